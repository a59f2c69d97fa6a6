"""Where resources live: SQLite in embedded and compose mode (the Kubernetes store comes later)."""
