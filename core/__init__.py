"""What the services share: the event model, the data-plane contract, errors and small helpers.

Nothing here imports a service package; every service may import this one.
"""
