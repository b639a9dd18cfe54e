"""``gitops-canary validate PATH... [--provider P]``: check Flagger manifests before they merge.

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
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_canary.core.specs import SUPPORTED_PROVIDERS, AlertProvider, Canary, MetricTemplate
from gitops_canary.core.validation import Issue, Parsed, parse_document
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
        help=(
            "provider for canaries without spec.provider, like Flagger's -mesh-provider "
            f"({', '.join(SUPPORTED_PROVIDERS)})"
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    paths = [Path(path) for path in args.paths]
    provider: str | None = args.provider
    if not paths:
        print("gitops-canary validate: give at least one file or directory", file=sys.stderr)
        return EXIT_USAGE
    if provider is not None and provider not in SUPPORTED_PROVIDERS:
        print(
            f"gitops-canary validate: --provider {provider!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_PROVIDERS)})",
            file=sys.stderr,
        )
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


def validate_paths(paths: Sequence[Path], provider: str | None) -> Report:
    """Validate every YAML file under ``paths`` one object at a time.

    Cross-object checks (discovery) extend this: they receive ``report.objects`` and append
    to ``report.issues``.
    """
    report = Report()
    for root in paths:
        files = list(iter_yaml_files(root))
        if not files:
            report.issues.append(Issue(str(root), "", "", "no *.yaml or *.yml files found here"))
        for path in files:
            _validate_file(path, provider, report)
    return report


def _validate_file(path: Path, provider: str | None, report: Report) -> None:
    display = str(path)
    report.files.append(display)
    try:
        documents = load_file(path, display=display)
    except ManifestError as error:
        report.issues.append(Issue(error.file, "", "", error.message))
        return
    for document in documents:
        parsed, issues = parse_document(document.data, document.file, default_provider=provider)
        report.issues.extend(issues)
        if parsed is not None:
            report.objects.append(ParsedObject(document, parsed))


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"
