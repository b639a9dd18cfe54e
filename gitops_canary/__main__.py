"""``python -m gitops_canary`` runs the command line."""

from gitops_canary.cli import main

raise SystemExit(main())
