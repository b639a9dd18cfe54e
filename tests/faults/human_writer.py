"""A person pushing small commits to the config repository while a rollout runs (fault suites).

Run as its own process: ``python human_writer.py --remote R --clone C --worker N --commits K``.
With ``--in-app`` its commits touch, in turn, a note of its own under ``apps/podinfo/notes/``, a
note shared by all such writers, a comment line at the end of ``apps/podinfo/deployment.yaml``
(the file gitops-canary edits too), and a file outside the apps; without it, only files outside
the apps. A rejected push is redone on the new tip, the way a person pulls and tries again;
nothing is ever forced. Prints the sha of every commit that reached the branch, one per line.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check, timeout=60
    )


def edit(clone: Path, worker: int, number: int, in_app: bool) -> str:
    """Change one file for commit ``number``; returns the subject."""
    line = f"worker {worker} commit {number}\n"
    kind = number % 4 if in_app else 3
    if kind == 0:
        target = clone / "apps" / "podinfo" / "notes" / f"worker-{worker}.md"
    elif kind == 1:
        target = clone / "apps" / "podinfo" / "notes" / "shared.md"
    elif kind == 2:
        target = clone / "apps" / "podinfo" / "deployment.yaml"
        line = f"# {line}"
    else:
        target = clone / "docs" / "notes" / f"worker-{worker}-{number}.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as out:
        out.write(line)
    return f"Note {worker}-{number}: {target.relative_to(clone).as_posix()}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--remote", type=Path, required=True)
    parser.add_argument("--clone", type=Path, required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--commits", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pause", type=float, nargs=2, default=(0.3, 1.2))
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--in-app", action="store_true", help="also touch apps/podinfo")
    args = parser.parse_args()
    pick = random.Random(args.seed * 1000 + args.worker)
    deadline = time.monotonic() + args.seconds
    git(args.clone.parent, "clone", "-q", "-b", "main", str(args.remote), str(args.clone))
    identity = ["-c", f"user.name=Writer {args.worker}", "-c", "user.email=writer@example.org"]
    for number in range(args.commits):
        time.sleep(pick.uniform(*args.pause))
        while True:
            if time.monotonic() > deadline:
                print(f"worker {args.worker}: out of time at commit {number}", file=sys.stderr)
                return 1
            git(args.clone, "fetch", "-q", "origin", "main")
            git(args.clone, "reset", "-q", "--hard", "origin/main")
            subject = edit(args.clone, args.worker, number, args.in_app)
            git(args.clone, "add", "-A")
            git(args.clone, *identity, "commit", "-q", "-m", subject)
            pushed = git(args.clone, "push", "-q", "origin", "HEAD:main", check=False)
            if pushed.returncode == 0:
                print(git(args.clone, "rev-parse", "HEAD").stdout.strip(), flush=True)
                break
            time.sleep(pick.uniform(0.02, 0.2))  # someone pushed first: redo on their tip
    return 0


if __name__ == "__main__":
    sys.exit(main())
