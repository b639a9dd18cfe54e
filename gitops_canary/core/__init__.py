"""The pure core: spec models, validation, the phase machine, metric verdicts, rendering, messages.

Nothing here does I/O, reads a clock or draws a random number: time is a parameter and anything
Flagger draws at random is derived from the inputs. The import-linter contract in
``pyproject.toml`` keeps git, Kubernetes, Prometheus, YAML and HTTP libraries out.
"""
