"""gitops-canary: Flagger's canary analysis, with every step written to git.

Layout (data flows one way through a tick; only the edges do I/O):

* ``core/``     pure: spec models, validation, the phase machine, verdicts, rendering, messages
* ``repo/``     the config repository: YAML loading, discovery, owned files, edits, git, PRs
* ``observe/``  read-only adapters: Kubernetes, appliers, Prometheus, webhooks, notifications
* ``sim/``      a local cluster simulator for the demo and the end-to-end tests
* ``reconciler.py`` one tick; ``loop.py`` the schedule; ``cli.py`` the composition root
"""

__version__ = "0.1.0"
