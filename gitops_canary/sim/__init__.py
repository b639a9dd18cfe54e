"""A local cluster simulator (it is not Kubernetes): an API server on loopback, an applier that
follows the config repo like Flux, Deployments that roll out, and traffic exported as metrics."""
