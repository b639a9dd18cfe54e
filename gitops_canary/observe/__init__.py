"""Read-only adapters to the world: the Kubernetes API, the applier (Flux, Argo CD), Prometheus,
webhooks and notification sinks. None of them writes desired state anywhere."""
