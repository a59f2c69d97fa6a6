"""The composition root: the `nerve` command and the all-in-one wiring of `nerve up`.

It may import every service; nothing imports it.
"""
