"""The load report: what a build read, how well it parsed, and what it could not map."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kb.model import Problem, RuleRecord

UNMAPPED_LISTED = 25


@dataclass
class VendorFigures:
    rules: int = 0
    deprecated: int = 0
    parse_status: dict[str, int] = field(default_factory=dict)
    languages: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)
    predicate_rows: int = 0
    unmapped_rows: int = 0
    unmapped_fields: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordFigures:
    """What the report counts of one rule."""

    vendor: str
    uid: str
    path: str
    language: str
    parse_status: str
    deprecated: bool
    problems: tuple[Problem, ...]
    predicate_rows: int
    unmapped_rows: int
    unmapped_fields: tuple[str, ...]

    @classmethod
    def of(cls, record: RuleRecord) -> RecordFigures:
        mappable = [r for r in record.predicates if r.field and not r.computed]
        unmapped = [r for r in mappable if not r.canonical_field]
        return cls(record.vendor, record.uid, record.path, record.language, record.parse_status,
                   record.deprecated, tuple(record.problems), len(mappable), len(unmapped),
                   tuple(dict.fromkeys(r.field for r in unmapped)))


@dataclass
class LoadReport:
    vendors: dict[str, VendorFigures] = field(default_factory=dict)
    redirects: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    # Every problem of every rule, naming the rule, its file and where known the line.
    problems: list[dict[str, Any]] = field(default_factory=list)
    graph: dict[str, int] = field(default_factory=dict)
    attack_version: str = ""
    seconds: float = 0.0
    # How the build went: mode (full or delta), rule files, files parsed, files from the cache.
    build: dict[str, Any] = field(default_factory=dict)

    def add_records(self, records: list[RuleRecord]) -> None:
        self.add_figures([RecordFigures.of(record) for record in records])

    def add_figures(self, records: list[RecordFigures]) -> None:
        """Count rules from their figures (an incremental build keeps figures, not records)."""
        statuses: dict[str, Counter[str]] = defaultdict(Counter)
        languages: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        problems: dict[str, Counter[str]] = defaultdict(Counter)
        unmapped: dict[str, Counter[str]] = defaultdict(Counter)
        for record in records:
            figures = self.vendors.setdefault(record.vendor, VendorFigures())
            figures.rules += 1
            figures.deprecated += record.deprecated
            statuses[record.vendor][record.parse_status] += 1
            languages[record.vendor][record.language][record.parse_status] += 1
            problems[record.vendor].update(problem.kind for problem in record.problems)
            self.problems.extend({"uid": record.uid, "path": record.path, **problem.as_dict()}
                                 for problem in record.problems)
            figures.predicate_rows += record.predicate_rows
            figures.unmapped_rows += record.unmapped_rows
            unmapped[record.vendor].update(record.unmapped_fields)
        for vendor, figures in self.vendors.items():
            figures.parse_status = dict(statuses[vendor])
            figures.languages = {lang: dict(c) for lang, c in languages[vendor].items()}
            figures.problems = dict(problems[vendor].most_common())
            figures.unmapped_fields = dict(unmapped[vendor].most_common(UNMAPPED_LISTED))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2), encoding="utf-8")
