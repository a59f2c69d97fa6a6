"""The control plane: Knative resources in, statuses and the data-plane contract out."""
