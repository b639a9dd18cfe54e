"""The config repository: reading manifests safely, finding canaries, the files gitops-canary owns,
the minimal edits to people's files, and the git adapter (fetch, commit, push, pull requests)."""
