"""Control as a Kubernetes operator (`python -m control --store kubernetes`, docs/kubernetes.md).

- `watch_loop`: one watch per kind on the API server (bookmarks, a new list on 410 Gone); every change
  queues a reconcile, run by the reconciler it is given (the embedded mode's, unchanged), with back-off
  when one fails;
- `lease`: leader election on a `coordination.k8s.io/v1` Lease, so only one control replica reconciles;
- `contract_configmap`: the data-plane contract written into ConfigMaps the data plane mounts;
- `webhooks`: Nerve's admission (validation, defaulting) as the API server's admission webhooks;
- `run`: the wiring of the above for `control/__main__.py`.
"""
