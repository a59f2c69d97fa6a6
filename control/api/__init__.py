"""The resource model: kinds, defaulting and validation of Knative YAML, one module per kind."""
