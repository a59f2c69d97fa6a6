"""Where resources live: the `ResourceStore` seam (base.py, Kubernetes API semantics) and its SQLite
implementation for embedded and compose mode; a Kubernetes store implements the same Protocol later."""
