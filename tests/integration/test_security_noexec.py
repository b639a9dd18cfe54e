"""Nothing from the config repository is executed, or used as a command, by gitops-canary.

The config repository is laced with shell: webhook ``metadata.cmd`` and other metadata,
a webhook URL, MetricTemplate queries with backticks and ``$(...)``, image names, pod commands,
env values and annotations, a kustomization with ``$(...)`` in ``namePrefix``, ``images`` and a
``configMapGenerator``, exec and container KRM functions in ``generators``/``transformers``
(with an executable script next to them), a git hook and ``.gitattributes`` filters. Every
payload would create its own marker file. A rollout runs through the playground far enough to
call the webhooks and run the queries, the laced canary gets its first commit, and the
``render``, ``validate``, ``status`` and ``plan`` commands read the same repository: no marker
may exist afterwards, while the payloads are seen arriving as data (at the load tester, in the
rendered objects).

A static test checks the product code itself: no shell, no ``eval``/``exec``, and every
subprocess's program is a literal (``git``) or a binary located on PATH.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitops_canary.cli.wiring import Built, build
from gitops_canary.config import parse_config
from gitops_canary.playground import EXAMPLES, Playground
from gitops_canary.reconciler import TickReport
from gitops_canary.telemetry import LOGGER_NAME, configure_logging

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PRODUCT = Path(__file__).resolve().parents[2] / "gitops_canary"
CLI = Path(sys.executable).with_name("gitops-canary")
STATUS = "apps/podinfo/gitops-canary/podinfo/status.yaml"
EVIL = "apps/evil"


# --------------------------------------------------------------------------- the laced repository


def touch(markers: Path, name: str) -> str:
    return f"touch {markers / name}"


def lace_podinfo(root: Path, markers: Path) -> None:
    """The rolling canary's webhooks and MetricTemplates carry payloads; they still work."""
    canary = root / "apps" / "podinfo" / "canary.yaml"
    text = canary.read_text(encoding="utf-8")
    smoke = "curl -sd 'anon' http://podinfo-canary.test:9898/token | grep token"
    old = f'          type: bash\n          cmd: "{smoke}"\n'
    assert old in text
    subshell = touch(markers, "pre-rollout-subshell")
    backtick = touch(markers, "pre-rollout-backtick")
    laced = (
        "          type: bash\n"
        "          cmd: |\n"
        f"            {smoke}; {touch(markers, 'pre-rollout')}\n"
        f"            $({subshell}) `{backtick}`\n"
        f'          extra: "; {touch(markers, "metadata-extra")} &"\n'
    )
    text = text.replace(old, laced)
    load = "hey -z 2m -q 10 -c 2 -host localproject.contour.io http://envoy.projectcontour/"
    assert f'          cmd: "{load}"\n' in text
    text = text.replace(
        f'          cmd: "{load}"\n',
        f'          cmd: "hey -z 2m http://envoy/ && {touch(markers, "load-test")} || '
        f'$({touch(markers, "load-test-subshell")})"\n',
    )
    canary.write_text(text, encoding="utf-8")
    templates = root / "apps" / "metric-templates" / "metric-templates.yaml"
    text = templates.read_text(encoding="utf-8")
    # A PromQL comment runs to the end of the (collapsed) query: Prometheus still answers.
    comment = f"# `{touch(markers, 'promql-backtick')}` $({touch(markers, 'promql-subshell')})"
    text = text.replace("    )/1000\n", f"    )/1000 {comment}\n")
    templates.write_text(text, encoding="utf-8")


def evil_app(markers: Path) -> dict[str, str]:
    """apps/evil: a valid canary whose every string field is a shell payload."""
    script = f"#!/bin/sh\n{touch(markers, 'exec-plugin')}\n"
    url_payload = touch(markers, "webhook-url").replace(" ", "${IFS}")
    template_payload = (
        f"`{touch(markers, 'evil-template')}` $({touch(markers, 'evil-template-subshell')})"
    )
    return {
        "kustomization.yaml": f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: evil
namePrefix: "$({touch(markers, "name-prefix")})-"
resources:
  - deployment.yaml
generators:
  - generator.yaml
transformers:
  - transformer.yaml
images:
  - name: ghcr.io/stefanprodan/podinfo
    newTag: "6.0.0;{touch(markers, "image-tag")}"
configMapGenerator:
  - name: payload
    literals:
      - cmd=$({touch(markers, "configmap")})
helmCharts:
  - name: "$({touch(markers, "helm")})"
    repo: "https://charts.example.org/`{touch(markers, "helm-repo")}`"
""",
        "generator.yaml": """\
apiVersion: gitops-canary.test/v1
kind: Generator
metadata:
  name: payload
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ./payload.sh
""",
        "transformer.yaml": f"""\
apiVersion: gitops-canary.test/v1
kind: Transformer
metadata:
  name: payload
  annotations:
    config.kubernetes.io/function: |
      container:
        image: "alpine; {touch(markers, "container-function")}"
""",
        "payload.sh": script,
        "deployment.yaml": f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  annotations:
    note: "`{touch(markers, "annotation")}`"
spec:
  selector:
    matchLabels:
      app: app
  template:
    metadata:
      labels:
        app: app
    spec:
      containers:
        - name: app
          image: "ghcr.io/stefanprodan/podinfo:6.0.0"
          command: ["sh", "-c", "{touch(markers, "pod-command")}"]
          env:
            - name: PAYLOAD
              value: "$({touch(markers, "env-value")})"
""",
        "canary.yaml": f"""\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: app
  namespace: evil
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: app
  service:
    port: 9898
    gatewayRefs:
      - name: contour
        namespace: projectcontour
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
      - name: payload
        templateRef:
          name: payload
        thresholdRange:
          max: 1
        interval: 1m
    webhooks:
      - name: "smoke; {touch(markers, "webhook-name")}"
        type: pre-rollout
        url: "http://flagger-loadtester.test/?q=$({url_payload})"
        metadata:
          type: bash
          cmd: "{touch(markers, "evil-webhook")}"
""",
        "template.yaml": f"""\
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: payload
  namespace: evil
spec:
  provider:
    type: prometheus
    address: http://flagger-prometheus:9090
  query: "sum(up) # {template_payload}"
""",
    }


def seed_source(target: Path, markers: Path) -> None:
    shutil.copytree(EXAMPLES, target)
    lace_podinfo(target, markers)
    for name, text in evil_app(markers).items():
        path = target / EVIL / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (target / EVIL / "payload.sh").chmod(0o755)
    hooks = target / ".githooks"
    hooks.mkdir()
    for hook in ("post-checkout", "post-merge", "pre-commit", "pre-push"):
        (hooks / hook).write_text(f"#!/bin/sh\n{touch(markers, 'git-' + hook)}\n")
        (hooks / hook).chmod(0o755)
    (target / ".gitattributes").write_text("*.yaml filter=payload diff=payload\n")
    smudge = touch(markers, "filter")
    (target / ".gitconfig").write_text(
        f'[core]\n\thooksPath = .githooks\n[filter "payload"]\n\tsmudge = {smudge}\n'
    )


# --------------------------------------------------------------------------- driving a rollout


def remote_file(playground: Playground, path: str) -> str:
    done = subprocess.run(
        ["git", "show", f"main:{path}"],
        cwd=playground.remote,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout


def drive(
    built: Built, playground: Playground, until: Callable[[list[TickReport]], bool]
) -> list[TickReport]:
    reports: list[TickReport] = []
    included = bumped = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reports.append(built.reconciler.tick())
        if until(reports):
            return reports
        status = remote_file(playground, STATUS)
        if not included and status:
            playground.include_generated("apps/podinfo")
            included = True
        elif included and not bumped and "phase: Initialized" in status:
            playground.set_image("apps/podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            bumped = True
        time.sleep(0.2)
    last = [f"{o.key} {o.kind} {o.weight} {o.message}" for o in reports[-1].outcomes]
    pytest.fail("the rollout did not get there in time; last tick:\n" + "\n".join(last))


def committed(key: str, reports: list[TickReport], *, weight: int = 0) -> bool:
    return any(
        o.key == key and o.kind == "commit" and o.weight >= weight
        for report in reports
        for o in report.outcomes
    )


@contextlib.contextmanager
def quiet_logging(stream: io.StringIO) -> Iterator[None]:
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


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


# --------------------------------------------------------------------------- the test


def test_no_payload_in_the_repository_is_ever_executed(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    source = tmp_path / "source"
    seed_source(source, markers)
    logs = io.StringIO()
    with quiet_logging(logs), Playground(tmp_path / "playground", source=source) as playground:
        assert playground.loadtester is not None
        data = playground.config_data()
        data["appliers"].append({"path": EVIL, "compareLive": True})
        built = build(parse_config(data, "<noexec>", env={}))
        try:
            reports = drive(
                built,
                playground,
                lambda seen: (
                    committed("evil/app", seen) and committed("test/podinfo", seen, weight=20)
                ),
            )
        finally:
            built.close()
        tasks = playground.loadtester.tasks

        # The command line reads the same repository.
        clone = tmp_path / "clone"
        subprocess.run(
            ["git", "clone", "-q", str(playground.remote), str(clone)], check=True, timeout=60
        )
        rendered = run_cli(["render", str(clone / EVIL), "--provider", "gatewayapi:v1"])
        checked = [str(clone / d) for d in (EVIL, "apps/podinfo", "apps/metric-templates")]
        validated = run_cli(["validate", *checked, "--provider", "gatewayapi:v1"])
        status = run_cli(["status", "--repo", str(clone), "--path", "apps"])
        data["repository"]["workdir"] = str(tmp_path / "plan-work")
        config = tmp_path / "plan.yaml"
        config.write_text(json.dumps(data), encoding="utf-8")
        planned = run_cli(["plan", "--config", str(config)])

    assert sorted(p.name for p in markers.iterdir()) == []

    # The payloads did arrive, as data.
    commands = "\n".join(task.cmd for task in tasks)
    assert "pre-rollout-backtick" in commands, commands
    assert "load-test-subshell" in commands, commands
    assert any(("extra", f"; {touch(markers, 'metadata-extra')} &") in t.metadata for t in tasks)
    # weight 20 needs a passing analysis: the laced latency query still ran in Prometheus.
    assert committed("test/podinfo", reports, weight=20)
    assert "failedChecks: 0" in remote_file(playground, STATUS)
    primary = remote_file(playground, f"{EVIL}/gitops-canary/app/deployment-app-primary.yaml")
    assert "pod-command" in primary
    assert "env-value" in primary
    assert rendered.returncode == 0, rendered.stderr
    assert "pod-command" in rendered.stdout
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert status.returncode == 0, status.stderr
    assert planned.returncode == 0, planned.stderr
    assert "Traceback" not in logs.getvalue() + rendered.stderr + planned.stderr


def test_a_payload_that_did_run_would_leave_its_marker(tmp_path: Path) -> None:
    """The markers are a working detector: the laced strings, run by a shell, create them."""
    markers = tmp_path / "markers"
    markers.mkdir()
    source = tmp_path / "source"
    seed_source(source, markers)
    canary = (source / EVIL / "canary.yaml").read_text(encoding="utf-8")
    (command,) = [
        line.split("cmd: ", 1)[1].strip('"') for line in canary.splitlines() if "cmd: " in line
    ]
    subprocess.run(["sh", "-c", command], check=True, timeout=10)
    subprocess.run([str(source / EVIL / "payload.sh")], check=True, timeout=10)
    assert sorted(p.name for p in markers.iterdir()) == ["evil-webhook", "exec-plugin"]


# --------------------------------------------------------------------------- the product code


def _product_files() -> list[Path]:
    files = sorted(PRODUCT.rglob("*.py"))
    assert len(files) > 50
    return files


def _call_name(node: ast.Call) -> str:
    func = node.func
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


FORBIDDEN_CALLS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "__import__",
        "os.system",
        "os.popen",
        "os.execv",
        "os.execvp",
        "os.execve",
        "os.spawnv",
        "os.spawnvp",
        "os.posix_spawn",
        "os.posix_spawnp",
        "pty.spawn",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "asyncio.create_subprocess_shell",
    }
)
#: Calls that start a program: the first argument is the command line.
SPAWNING_CALLS = frozenset(
    {
        "subprocess.run",
        "subprocess.Popen",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "self._git.execute",  # GitPython's Git.execute
    }
)
#: Program variables that are not literals, and where they come from (never from the repo).
LOCATED_PROGRAMS = {
    "kubectl": "shutil.which('kubectl') in repo/kustomize.kubectl_build",
    "self._kubectl": "shutil.which('kubectl') in the simulator's applier",
    "binary": "the configured or PATH-located prometheus binary in the simulator",
}


def _first_program(argv: ast.expr, scope: ast.AST) -> ast.expr | None:
    """The expression of argv[0]: from a list literal, or from ``name = [...]`` in scope."""
    if isinstance(argv, ast.List | ast.Tuple) and argv.elts:
        return argv.elts[0]
    if isinstance(argv, ast.Name):
        for node in ast.walk(scope):
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == argv.id for t in node.targets)
                and isinstance(node.value, ast.List)
                and node.value.elts
            ):
                return node.value.elts[0]
    return None


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _own_module(node: ast.Call) -> bool:
    """``import_module(f"gitops_canary.<...>")``: only this package's own modules."""
    (argument,) = node.args
    if isinstance(argument, ast.JoinedStr) and argument.values:
        first = argument.values[0]
        return isinstance(first, ast.Constant) and str(first.value).startswith("gitops_canary.")
    return isinstance(argument, ast.Constant) and str(argument.value).startswith("gitops_canary.")


def test_the_product_never_runs_a_shell_or_evaluates_code() -> None:
    problems = []
    for path in _product_files():
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        where = path.relative_to(PRODUCT.parent)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name in FORBIDDEN_CALLS:
                problems.append(f"{where}:{node.lineno}: calls {name}")
            if name.endswith("import_module") and not _own_module(node):
                problems.append(f"{where}:{node.lineno}: imports a module named by data")
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    problems.append(f"{where}:{node.lineno}: {name}(shell=...)")
        for text in ("shell=True", "os.system(", "os.popen(", "yaml.load(", "pickle.load"):
            if text in source:
                problems.append(f"{where}: contains {text!r}")
    assert problems == []


def test_every_program_the_product_starts_is_a_literal_or_located_binary() -> None:
    seen: list[str] = []
    problems = []
    for path in _product_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(PRODUCT.parent)
        for function in _functions(tree):
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and _call_name(node) in SPAWNING_CALLS):
                    continue
                if not node.args:
                    problems.append(f"{where}:{node.lineno}: no command line given")
                    continue
                program = _first_program(node.args[0], function)
                if isinstance(program, ast.Constant) and isinstance(program.value, str):
                    seen.append(program.value)
                elif program is not None and ast.unparse(program) in LOCATED_PROGRAMS:
                    seen.append(ast.unparse(program))
                else:
                    shown = ast.unparse(node.args[0])[:60]
                    problems.append(f"{where}:{node.lineno}: program of {shown} is not a literal")
    assert problems == []
    # The scan found the call sites it is meant to check.
    assert {"git", "kubectl"} <= set(seen), seen
    assert set(seen) <= {"git", *LOCATED_PROGRAMS}, seen


def test_the_scan_would_catch_a_shell_and_a_program_from_data() -> None:
    bad = ast.parse(
        "import subprocess, os\n"
        "def f(cmd, spec):\n"
        "    subprocess.run(cmd, shell=True)\n"
        "    subprocess.run([spec['metadata']['cmd'], '-x'])\n"
        "    os.system(cmd)\n"
    )
    (function,) = _functions(bad)
    calls = [n for n in ast.walk(function) if isinstance(n, ast.Call)]
    names = [_call_name(c) for c in calls]
    assert "os.system" in names
    assert "os.system" in FORBIDDEN_CALLS
    shells = [c for c in calls for k in c.keywords if k.arg == "shell"]
    assert shells
    runs = [c for c in calls if _call_name(c) == "subprocess.run"]
    assert _first_program(runs[0].args[0], function) is None
    program = _first_program(runs[1].args[0], function)
    assert program is not None
    assert not isinstance(program, ast.Constant)
    assert ast.unparse(program) not in LOCATED_PROGRAMS
