"""Reconcilers: one per kind (broker.py, trigger.py, kafkasource.py) doing the I/O, pure builders in
resources/, and controller.py running a pass over every kind and publishing the contract."""
