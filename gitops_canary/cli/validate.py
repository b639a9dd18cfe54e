"""``gitops-canary validate PATH... [--provider [DIR=]P]``: check Flagger manifests before merging.

This module owns the command: it reads files and directories with
:mod:`gitops_canary.repo.manifests`, validates every Flagger object with
:mod:`gitops_canary.core.validation`, prints one line per issue and a summary, and exits
0 (valid, warnings allowed), 1 (something is invalid) or 2 (the command line is wrong).

Checks across objects (a missing target Deployment, two canaries on one target, the generated
directory not included in a kustomization) belong to discovery; they plug in at
:func:`validate_paths`, which returns everything parsed so they can run on it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_canary.core.specs import SUPPORTED_PROVIDERS, AlertProvider, Canary, MetricTemplate
from gitops_canary.core.validation import Issue, Parsed, Severity, parse_document
from gitops_canary.repo.discovery import discover
from gitops_canary.repo.manifests import Document, ManifestError, iter_yaml_files, load_file

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class ParsedObject:
    """A Flagger object that validated, with the document it came from."""

    document: Document
    object: Parsed


@dataclass
class Report:
    """What one ``validate`` run found."""

    files: list[str] = field(default_factory=list)
    objects: list[ParsedObject] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.is_error]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if not issue.is_error]

    @property
    def valid(self) -> bool:
        return not self.errors

    def count(self, kind: type[Any]) -> int:
        return sum(isinstance(parsed.object, kind) for parsed in self.objects)

    def summary(self) -> str:
        if not self.valid:
            files_with_errors = len({issue.file for issue in self.errors})
            text = f"{_plural(len(self.errors), 'error')} in {_plural(files_with_errors, 'file')}"
        else:
            found = [
                _plural(len(self.files), "file"),
                _plural(self.count(Canary), "canary", "canaries"),
                _plural(self.count(MetricTemplate), "metric template"),
            ]
            if self.count(AlertProvider):
                found.append(_plural(self.count(AlertProvider), "alert provider"))
            text = f"{', '.join(found)}: valid"
        if self.warnings:
            text += f" ({_plural(len(self.warnings), 'warning')})"
        return text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check Canary, MetricTemplate and AlertProvider manifests",
        description=(
            "Check Flagger Canary, MetricTemplate and AlertProvider manifests in files or "
            "directories (searched recursively for *.yaml and *.yml). Exit status: 0 valid "
            "(warnings allowed), 1 invalid, 2 usage error."
        ),
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="file or directory to check")
    parser.add_argument(
        "--provider",
        action="append",
        default=[],
        metavar="[DIR=]PROVIDER",
        help=(
            "provider for canaries without spec.provider, like Flagger's -mesh-provider "
            f"({', '.join(SUPPORTED_PROVIDERS)}); DIR=PROVIDER applies to files under DIR "
            "only (the reconciler's per-path appliers[].provider); repeatable"
        ),
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Providers:
    """The provider for each file: the longest matching ``DIR=`` entry, else the default."""

    default: str | None = None
    by_directory: tuple[tuple[Path, str], ...] = ()

    @classmethod
    def parse(cls, values: Sequence[str]) -> Providers:
        default: str | None = None
        by_directory: list[tuple[Path, str]] = []
        for value in values:
            directory, _, provider = value.rpartition("=")
            if provider not in SUPPORTED_PROVIDERS:
                raise ValueError(
                    f"--provider {value!r}: {provider!r} is not supported "
                    f"(supported: {', '.join(SUPPORTED_PROVIDERS)})"
                )
            if directory:
                by_directory.append((Path(directory).resolve(), provider))
            else:
                default = provider
        by_directory.sort(key=lambda entry: -len(entry[0].parts))
        return cls(default, tuple(by_directory))

    def for_file(self, path: Path) -> str | None:
        resolved = path.resolve()
        for directory, provider in self.by_directory:
            if resolved == directory or directory in resolved.parents:
                return provider
        return self.default


def run(args: argparse.Namespace) -> int:
    paths = [Path(path) for path in args.paths]
    if not paths:
        print("gitops-canary validate: give at least one file or directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        provider = Providers.parse(args.provider)
    except ValueError as err:
        print(f"gitops-canary validate: {err}", file=sys.stderr)
        return EXIT_USAGE
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        print(
            f"gitops-canary validate: no such file or directory: {', '.join(missing)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    report = validate_paths(paths, provider)
    for issue in report.issues:
        print(issue)
    print(report.summary())
    return EXIT_VALID if report.valid else EXIT_INVALID


def validate_paths(paths: Sequence[Path], provider: str | Providers | None) -> Report:
    """Validate every YAML file under ``paths`` one object at a time.

    Cross-object checks (discovery) extend this: they receive ``report.objects`` and append
    to ``report.issues``.
    """
    if not isinstance(provider, Providers):
        provider = Providers(provider)
    report = Report()
    for root in paths:
        files = list(iter_yaml_files(root))
        if not files:
            report.issues.append(Issue(str(root), "", "", "no *.yaml or *.yml files found here"))
        for path in files:
            _validate_file(path, provider, report)
    _cross_check(paths, provider, report)
    return report


def _cross_check(paths: Sequence[Path], provider: Providers, report: Report) -> None:
    """What only the repository as a whole can tell: the target exists in the canary's namespace,
    one canary per target, the MetricTemplates exist, kustomizations build, and the generated
    directory is included somewhere. Each valid canary is checked as the reconciler would."""
    typed = [str(p) for p in paths if p.is_dir()]
    if not typed:
        return
    directories = [Path(t).resolve() for t in typed]
    root = Path(os.path.commonpath(directories))
    # Show discovery's repo-relative file names under the prefix the user typed.
    shown = os.path.commonpath(typed) if len(typed) > 1 else typed[0]
    shown = shown if Path(shown).resolve() == root else str(root)
    relative = [d.relative_to(root).as_posix() or "." for d in directories]

    def provider_for(file: str) -> str | None:
        return provider.for_file(root / file)

    discovery = discover(root, relative, default_provider=provider_for)
    for found in discovery.canaries:
        if found.canary is None:
            continue  # its spec problems were reported file by file above
        for text in found.issues:
            report.issues.append(_issue(shown, text, "error"))
        for text in found.warnings:
            report.issues.append(_issue(shown, text, "warning"))


def _issue(shown: str, text: str, severity: Severity) -> Issue:
    """Discovery's ``<file>: <message>`` with the file shown under the path the user typed."""
    file, _, message = text.partition(": ")
    return Issue(f"{shown.rstrip('/')}/{file}", "", "", message, severity=severity)


def _validate_file(path: Path, provider: Providers, report: Report) -> None:
    display = str(path)
    report.files.append(display)
    try:
        documents = load_file(path, display=display)
    except ManifestError as error:
        report.issues.append(Issue(error.file, "", "", error.message))
        return
    for document in documents:
        parsed, issues = parse_document(
            document.data, document.file, default_provider=provider.for_file(path)
        )
        report.issues.extend(issues)
        if parsed is not None:
            report.objects.append(ParsedObject(document, parsed))


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"
