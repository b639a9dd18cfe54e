"""``gitops-canary run`` (the reconciler) and ``gitops-canary plan`` (what it would commit).

``run`` loops until SIGTERM/SIGINT, finishing the tick in flight; ``run --once`` runs one tick and
exits, for CronJobs and CI. ``plan`` decides like a tick but writes nothing to the remote: it
shows each step it would commit as a commit message and a unified diff.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from gitops_canary.cli.wiring import build, load_config
from gitops_canary.config import ConfigError
from gitops_canary.loop import Loop
from gitops_canary.telemetry import HealthState, configure_logging, serve

log = logging.getLogger("gitops_canary.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FATAL = 0, 1, 2, 3


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run the reconciler (loop, or one tick with --once)",
        description="Run the reconciler: every step of every canary becomes a commit.",
    )
    run.add_argument("--config", type=Path, required=True, metavar="FILE")
    run.add_argument("--once", action="store_true", help="run one tick and exit (CronJobs, CI)")
    run.set_defaults(handler=run_command)

    plan = commands.add_parser(
        "plan",
        help="show what the next tick would commit, changing nothing",
        description=(
            "Decide like one tick of 'run' and print each commit it would make (message and "
            "unified diff). Nothing is pushed. Webhooks the analysis needs are called, as a "
            "real tick would call them."
        ),
    )
    plan.add_argument("--config", type=Path, required=True, metavar="FILE")
    plan.set_defaults(handler=plan_command)


def _config(path: Path) -> Any:
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"gitops-canary: {err}", file=sys.stderr)
        return None


def run_command(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config is None:
        return EXIT_USAGE
    configure_logging(config.logging.format, config.logging.level)
    built = _build(config, args.config)
    if isinstance(built, int):
        return built
    health = HealthState()
    server = None
    if config.metrics.enabled and not args.once:
        try:
            server = serve(built.recorder, health, config.metrics.address, config.metrics.port)
        except OSError as err:
            log.error(
                "Cannot start: cannot serve /metrics on %s:%s: %s",
                config.metrics.address,
                config.metrics.port,
                err.strerror or err,
            )
            built.close()
            return EXIT_FATAL
        log.info("Serving /metrics, /healthz and /readyz on %s:%s", *server.server_address[:2])
    loop = Loop(built.reconciler, health)
    try:
        if args.once:
            report = loop.run_once()
            return EXIT_OK if report is not None else EXIT_FAILED
        loop.install_signal_handlers()
        loop.run()
        log.info("Stopped.")
        return EXIT_OK
    finally:
        if server is not None:
            server.shutdown()
        built.close()


def plan_command(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config is None:
        return EXIT_USAGE
    configure_logging(config.logging.format, "warning")
    # Plan in a scratch working copy so the real one (and the remote) are never touched.
    with tempfile.TemporaryDirectory(prefix="gitops-canary-plan-") as scratch:
        repository = config.repository.model_copy(update={"workdir": Path(scratch) / "work"})
        config = config.model_copy(update={"repository": repository})
        built = _build(config, args.config)
        if isinstance(built, int):
            return built
        try:
            planned = plan(built)
        except Exception as err:
            log.error("Cannot plan: %s", " ".join(str(err).split()))
            return EXIT_FATAL
        finally:
            built.close()
    sys.stdout.write(planned or "Nothing to commit: every canary is waiting or up to date.\n")
    return EXIT_OK


def _build(config: Any, source: Path) -> Any:
    """The wired reconciler, or the exit code after one clear message."""
    try:
        return build(config)
    except ConfigError as err:
        print(f"gitops-canary: {source}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:
        log.error("Cannot start: %s", " ".join(str(err).split()))
        return EXIT_FATAL


def plan(built: Any) -> str:
    """Every commit the next tick would make, as text (messages and diffs), pushing nothing."""
    chunks: list[str] = []

    def capture(repo: Any, produce: Any, **_: Any) -> str | None:
        repo.fetch()
        repo.reset_to_remote()
        before = _snapshot(repo.worktree)
        outcome = produce(repo.worktree)
        if outcome is None:
            return None
        message, paths = outcome
        after = _snapshot(repo.worktree)
        diff: list[str] = []
        for path in sorted(set(paths)):
            old = before.get(path, "").splitlines(keepends=True)
            new = after.get(path, "").splitlines(keepends=True)
            diff.extend(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"))
        chunks.append(f"commit (planned)\n\n{_indent(message)}\n\n{''.join(diff)}")
        repo.reset_to_remote()
        return None

    built.reconciler._push = capture  # plan never pushes: the push port only records
    built.reconciler.tick()
    return "\n".join(chunks)


def _snapshot(root: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in root.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        try:
            files[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
    return files


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in text.splitlines())
