"""Benchmarks of gitops-canary's own cost: git, discovery, decisions, rendering and writing.

Run ``python -m benchmarks.run`` (or ``make bench``); the method and the latest figures are in
``docs/performance.md``. The cluster, the applier, Prometheus and webhooks are in-process fakes
that answer instantly, so every figure is gitops-canary's work plus real git's.
"""
