"""Bad input in the config repository, through the reconciler: reported, skipped, never fatal.

Every directory under ``cases/`` is one bad canary setup (malformed YAML, alias bombs, a 50 MiB
file, wrong types, bad weights and intervals, missing or foreign targets, names that climb out of
their directory, MetricTemplate injection, non-HTTP URLs, broken kustomizations...). Its
``expect.txt`` starts with a one-line description and says which file (``file:``, ``also:``) and
field (``field:``) the error must name and what it must say (``expect:``); ``sparse: NAME SIZE``
asks the test to create a sparse file of that size.

All cases sit side by side under ``apps/bad/<case>/`` of one config repository seeded from
``examples/repo``, and ONE reconciler tick handles them together with the example canaries:
canaries are independent by design, so one tick must report every bad one and still commit the
good ``test/podinfo``. Each case then checks, against that tick:

(a) a reported problem names the case's file and field and says what its ``expect.txt`` says,
    and the problem is logged, on one line;
(b) nothing captured (logs, stdout, stderr) holds a traceback;
(c) no commit touches the case's directory;
and, once for the tick, (d) the good canary got its Initializing commit in that same tick.

The tick also carries a valid canary with a warning and one whose owned directory is committed
as a symlink out of the working copy. A few checks need discovery alone: reading outside the
repository for an escaping name, and the cost of a 50 MiB file. Cases and checks the product
fails is marked ``xfail(strict=True)`` with the reason (see :data:`KNOWN_BUGS`).

The tick runs once per session: with xdist, the first worker runs it and shares the result.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import shutil
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from gitops_canary.cli.wiring import build
from gitops_canary.config import parse_config
from gitops_canary.playground import EXAMPLES, Playground
from gitops_canary.repo.discovery import discover
from gitops_canary.telemetry import LOGGER_NAME, configure_logging

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
VALID_DIR = HERE / "valid"
BAD_ROOT = "apps/bad"
GOOD_CANARY = "test/podinfo"
#: A valid canary with a warning, next to the cases (see test_a_warning_is_marked_once).
WARNING_CASE = "interval-below-minimum"
#: A case whose owned directory is committed as a symlink leading out of the working copy.
SYMLINK_CASE = "owned-dir-symlink"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/')

#: Cases the product does not handle yet; each reason says where and what (strict: they must fail).
KNOWN_BUGS: dict[str, str] = {}


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    id: str
    description: str
    file: str
    field: str | None
    expect: tuple[str, ...]
    also: tuple[str, ...] = ()
    sparse: tuple[tuple[str, int], ...] = ()

    @property
    def directory(self) -> str:
        return f"{BAD_ROOT}/{self.id}"


def load_case(directory: Path) -> Case:
    lines = (directory / "expect.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), f"{directory.name}/expect.txt: first line is a description"
    values: dict[str, list[str]] = {}
    for line in lines[1:]:
        key, _, value = line.partition(": ")
        values.setdefault(key, []).append(value)
    sparse = tuple(
        (name, int(size)) for name, size in (s.split() for s in values.get("sparse", []))
    )
    return Case(
        id=directory.name,
        description=lines[0][2:],
        file=values["file"][0],
        field=values.get("field", [None])[0],
        expect=tuple(values["expect"]),
        also=tuple(values.get("also", [])),
        sparse=sparse,
    )


CASES = [load_case(path) for path in sorted(CASES_DIR.iterdir()) if path.is_dir()]


def case_params() -> list[object]:
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[case.id])]
            if case.id in KNOWN_BUGS
            else [],
        )
        for case in CASES
    ]


# --------------------------------------------------------------------------- one tick over all


@dataclass(frozen=True)
class Outcome:
    key: str
    kind: str
    phase: str | None
    commit: str | None
    message: str


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Ticked:
    """What one tick over the whole corpus did, as plain data (shared between xdist workers)."""

    outcomes: list[Outcome]
    problems: list[str]  # TickReport.problems and the messages of "error" outcomes
    seconds: float
    logs: str
    output: str  # stdout and stderr
    commits: list[Commit]
    outside: list[str]  # what the symlinked owned directory's target holds afterwards
    escaped: list[str]  # landing places of the escaping names that exist afterwards

    def about(self, case: Case) -> list[str]:
        """Problems about one case: they start with a file of its directory."""
        return [p for p in self.problems if p.startswith(case.directory + "/")]

    @classmethod
    def from_json(cls, text: str) -> Ticked:
        data = json.loads(text)
        data["outcomes"] = [Outcome(**o) for o in data["outcomes"]]
        data["commits"] = [
            Commit(c["sha"], c["message"], tuple(c["paths"])) for c in data["commits"]
        ]
        return cls(**data)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def seed_source(target: Path) -> None:
    """examples/repo, every case under apps/bad/<case>/ and the two extra canaries."""
    shutil.copytree(EXAMPLES, target)
    for case in CASES:
        destination = target / case.directory
        shutil.copytree(
            CASES_DIR / case.id, destination, ignore=shutil.ignore_patterns("expect.txt")
        )
        for name, size in case.sparse:
            with (destination / name).open("wb") as handle:
                handle.truncate(size)  # sparse: costs no disk in the test's own tree
    shutil.copytree(VALID_DIR / WARNING_CASE, target / BAD_ROOT / WARNING_CASE)
    symlinked = target / BAD_ROOT / SYMLINK_CASE
    shutil.copytree(VALID_DIR / WARNING_CASE, symlinked)
    for name in ("canary.yaml", "deployment.yaml"):
        path = symlinked / name
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(WARNING_CASE, SYMLINK_CASE).replace("5s", "1m"))


def commits_since(remote: Path, base: str) -> list[Commit]:
    found = []
    for sha in git(remote, "rev-list", f"{base}..main").split():
        message = git(remote, "show", "-s", "--format=%B", sha)
        paths = git(remote, "show", "--name-only", "--format=", sha).split()
        found.append(Commit(sha, message, tuple(paths)))
    return found


@contextlib.contextmanager
def captured_logging(stream: io.StringIO) -> Iterator[None]:
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    configure_logging("text", "info", stream=stream)
    try:
        yield
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def tick_over_the_corpus(workdir: Path) -> Ticked:
    source = workdir / "source"
    seed_source(source)
    outside = workdir / "outside"
    outside.mkdir()
    logs, output = io.StringIO(), io.StringIO()
    with (
        captured_logging(logs),
        contextlib.redirect_stdout(output),
        contextlib.redirect_stderr(output),
        Playground(workdir / "playground", source=source) as playground,
    ):

        def plant_symlink(root: Path) -> None:
            owned = root / BAD_ROOT / SYMLINK_CASE / "gitops-canary"
            owned.mkdir(exist_ok=True)
            (owned / "app").symlink_to(outside)

        playground.person_commit("Plant a symlink where gitops-canary writes", plant_symlink)
        base = git(playground.remote, "rev-parse", "main").strip()
        data = playground.config_data()
        # compareLive never raises for a missing applier object: a bad canary that slipped
        # through would get its first commit, which is what (c) looks for.
        data["appliers"].append({"path": BAD_ROOT, "compareLive": True})
        built = build(parse_config(data, "<badinput>", env={}))
        try:
            started = time.monotonic()
            report = built.reconciler.tick()
            seconds = time.monotonic() - started
        finally:
            built.close()
        commits = commits_since(playground.remote, base)
        owned = built.repo.worktree / BAD_ROOT / "name-x" / "gitops-canary"
    landings = [owned / name for name in ("../../escape", "evil/../../x", "..")]
    landings.append(Path("/tmp/gitops-canary-escape"))
    return Ticked(
        outcomes=[
            Outcome(o.key, o.kind, o.phase.value if o.phase else None, o.commit, o.message)
            for o in report.outcomes
        ],
        problems=list(report.problems) + [o.message for o in report.outcomes if o.kind == "error"],
        seconds=seconds,
        logs=logs.getvalue(),
        output=output.getvalue(),
        commits=commits,
        outside=sorted(p.name for p in outside.iterdir()),
        escaped=[str(p) for p in landings if os.path.lexists(os.path.normpath(p))],
    )


@pytest.fixture(scope="session")
def ticked(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Ticked:
    """One tick for the whole session: the first xdist worker runs it, the other reads it."""
    if worker_id == "master":
        return tick_over_the_corpus(tmp_path_factory.mktemp("badinput"))
    shared = tmp_path_factory.getbasetemp().parent
    result = shared / "badinput-tick.json"
    with (shared / "badinput-tick.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.is_file():
            ticked = tick_over_the_corpus(shared / "badinput")
            result.write_text(json.dumps(asdict(ticked)), encoding="utf-8")
        return Ticked.from_json(result.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- per case


def test_the_corpus_is_large_and_complete() -> None:
    assert len(CASES) >= 50
    for case in CASES:
        assert case.expect, case.id
        assert (CASES_DIR / case.id / case.file).is_file() or case.sparse, case.id
        for other in case.also:
            assert (CASES_DIR / case.id / other).is_file(), f"{case.id}: {other}"


@pytest.mark.parametrize("case", case_params())
def test_bad_input_is_reported_once_and_skipped(case: Case, ticked: Ticked) -> None:
    mentions = ticked.about(case)
    where = f"{case.directory}/{case.file}"
    listing = "\n".join(mentions) or "(nothing mentions this case)"

    # (a) the file, the field and the fragment, in one reported and logged line
    matching = [
        p
        for p in mentions
        if where in p
        and (case.field is None or case.field in p)
        and all(fragment in p for fragment in case.expect)
    ]
    assert matching, f"{case.description}: no problem names {where} {case.field}:\n{listing}"
    for other in case.also:
        assert any(f"{case.directory}/{other}" in p for p in mentions), listing
    for problem in mentions:
        assert "\n" not in problem
        assert problem in ticked.logs, f"reported but not logged: {problem}"

    # (b) no traceback next to it
    for marker in TRACEBACK_MARKERS:
        assert marker not in ticked.logs
        assert marker not in ticked.output

    # (c) nothing committed for it
    touching = [
        c.sha[:8] for c in ticked.commits if any(_under(p, case.directory) for p in c.paths)
    ]
    assert touching == [], f"{case.id}: commits touched {case.directory}: {touching}"


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


# --------------------------------------------------------------------------- the tick as a whole


def test_the_good_canary_still_gets_its_first_commit_in_the_same_tick(ticked: Ticked) -> None:
    (outcome,) = [o for o in ticked.outcomes if o.key == GOOD_CANARY]
    assert outcome.kind == "commit", outcome
    assert outcome.phase == "Initializing"
    (commit,) = [c for c in ticked.commits if c.sha == outcome.commit]
    assert all(_under(p, "apps/podinfo/gitops-canary/podinfo") for p in commit.paths)
    assert f"Canary: {GOOD_CANARY}" in commit.message


def test_the_tick_reports_every_case_without_a_traceback(ticked: Ticked) -> None:
    silent = [c.id for c in CASES if c.id not in KNOWN_BUGS and not ticked.about(c)]
    assert silent == [], f"cases nobody reported: {silent}"
    for marker in TRACEBACK_MARKERS:
        assert marker not in ticked.logs
        assert marker not in ticked.output
    # Parsing a 50 MiB file, an alias bomb and 150 nested lists must not stall the tick.
    assert ticked.seconds < 60


def test_each_problem_is_logged_once_per_tick(ticked: Ticked) -> None:
    lines = [line for line in ticked.logs.splitlines() if f" {BAD_ROOT}/" in line]
    bodies = [line.split(" ", 2)[2] for line in lines]  # without the time stamp
    repeated = {body for body in bodies if bodies.count(body) > 1}
    assert repeated == set()


def test_a_warning_is_marked_once(ticked: Ticked) -> None:
    warnings = [p for p in ticked.problems if f"{BAD_ROOT}/{WARNING_CASE}/" in p]
    assert any("shorter than Flagger's minimum" in w for w in warnings), warnings
    assert not [w for w in warnings if "(warning) (warning)" in w]


def test_an_owned_directory_committed_as_a_symlink_is_not_followed(ticked: Ticked) -> None:
    directory = f"{BAD_ROOT}/{SYMLINK_CASE}"
    assert not [c for c in ticked.commits if any(_under(p, directory) for p in c.paths)]
    assert any(f"{directory}/gitops-canary/app" in p for p in ticked.problems), ticked.problems
    assert ticked.outside == []


# --------------------------------------------------------------------------- discovery alone


def _canary(name: str) -> str:
    return f"""\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: {name}
  namespace: test
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: app}}
  service: {{port: 80}}
  analysis: {{interval: 1m, threshold: 5, stepWeight: 10, maxWeight: 50}}
"""


def test_an_invalid_name_never_makes_discovery_read_outside_the_repository(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = "planted-value-from-outside"
    (outside / "status.yaml").write_text(f"apiVersion: v1\nkind: {planted}\n")
    repo = tmp_path / "repo"
    (repo / "apps").mkdir(parents=True)
    (repo / "apps" / "canary.yaml").write_text(_canary(str(outside)))
    discovery = discover(repo, ["apps"], default_provider="contour")
    (found,) = discovery.canaries
    texts = [*discovery.issues, *found.issues, *found.warnings]
    assert any("metadata.name" in text for text in texts)
    assert not [text for text in texts if planted in text or f"{outside}/" in text]


def _huge_repo(tmp_path: Path, size: int) -> Path:
    repo = tmp_path / "repo"
    (repo / "apps").mkdir(parents=True)
    with (repo / "apps" / "huge.yaml").open("wb") as handle:
        handle.truncate(size)
    return repo


def test_a_50_mib_file_is_refused_fast_by_discovery(tmp_path: Path) -> None:
    repo = _huge_repo(tmp_path, 50 * 1024 * 1024)
    started = time.monotonic()
    discovery = discover(repo, ["apps"], default_provider="contour")
    seconds = time.monotonic() - started
    assert discovery.issues == [
        "apps/huge.yaml: file is 50.0 MiB, larger than the 5.0 MiB limit for manifests; "
        "split it into smaller files"
    ]
    assert seconds < 5


def test_an_oversized_file_is_refused_without_reading_it_into_memory(tmp_path: Path) -> None:
    size = 50 * 1024 * 1024
    repo = _huge_repo(tmp_path, size)
    tracemalloc.start()
    try:
        discovery = discover(repo, ["apps"], default_provider="contour")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert discovery.issues
    assert peak < size // 5, f"discovery held {peak / 2**20:.0f} MiB for a {size >> 20} MiB file"


def test_names_that_climb_out_are_never_written_to(ticked: Ticked) -> None:
    """Where ``<dir>/gitops-canary/<name>`` would land for the escaping names of the corpus."""
    assert ticked.escaped == []
