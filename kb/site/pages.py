"""Every page of the site: its kind, its path and how to get what its template shows.

Contexts are made only when a page is rendered, so that the renderers, each taking its share
of the pages, never work out the pages of the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kb.graph.backend import Row
from kb.site import paths
from kb.site.catalogue import Catalogue
from kb.site.condition import condition_view, shown_text
from kb.site.drilldowns import technique_header

MATRIX_DATA = "assets/matrix-data.js"
DRILLDOWN_ROWS = 250  # rules listed per drill-down page; longer lists go on to more pages
RULE_ROWS = 250  # predicate rows shown per section of a rule page


@dataclass(frozen=True)
class Page:
    kind: str
    path: str
    template: str
    context: Callable[[], dict[str, Any]]


@dataclass
class Pager:
    """Where one page of a long drill-down sits among its pages (paths from the root)."""

    pages: list[str]
    current: int

    @property
    def first(self) -> bool:
        return self.current == 0

    @property
    def offset(self) -> int:
        return self.current * DRILLDOWN_ROWS


def site_pages(catalogue: Catalogue) -> Iterator[Page]:
    """The index, then techniques, rules, fields, event types and indicators."""
    yield Page("index", "index.html", "index.html", lambda: {
        "columns": catalogue.matrix(), "vendors": catalogue.vendor_stats(),
        "sources": catalogue.sources(), "data_script": MATRIX_DATA})
    yield from _technique_pages(catalogue)
    yield from _rule_pages(catalogue)
    yield from _drilldown_pages(catalogue)


def _technique_pages(catalogue: Catalogue) -> Iterator[Page]:
    data = catalogue.data
    names = {tactic["shortname"]: tactic["name"] for tactic in data.tactics}

    def context(technique: str) -> dict[str, Any]:
        page = catalogue.guide(technique)
        return {"guide": page.guide, "sample_ops": page.sample_ops,
                "tactics": [names.get(t, t) for t in page.guide.technique["tactics"]],
                "subtechniques": [technique_header(data, child)
                                  for child in data.children.get(technique, [])
                                  if child in catalogue.technique_set]}

    for technique in catalogue.technique_pages:
        yield Page("technique", paths.technique_path(technique), "technique.html",
                   lambda technique=technique: context(technique))


def _rule_pages(catalogue: Catalogue) -> Iterator[Page]:
    data = catalogue.data

    def context(uid: str) -> dict[str, Any]:
        predicates = data.predicates[uid]
        rule = data.rules[uid]
        return {"rule": rule, "neighbours": catalogue.neighbours(uid),
                "origin": data.info.get(f"origin:{rule['source']}", ""),
                "text": shown_text(rule["text"]), "condition": condition_view(rule["condition"]),
                "matches": [row for row in predicates if not row["exclusion"]],
                "exclusions": [row for row in predicates if row["exclusion"]],
                "shown": RULE_ROWS}

    for uid in data.rules:
        yield Page("rule", paths.rule_path(uid), "rule.html", lambda uid=uid: context(uid))


def _drilldown_pages(catalogue: Catalogue) -> Iterator[Page]:
    data = catalogue.data
    for name, row in data.fields.items():
        rows = catalogue.fields[name]
        yield from _paginated("field", paths.field_path(name), "field.html", {"field": row},
                              len(rows), lambda rows=rows: rows)
    for key, row in data.event_types.items():
        rows = catalogue.event_types[key]
        yield from _paginated("event_type", paths.event_type_path(key), "event_type.html",
                              {"event": row}, len(rows), lambda rows=rows: rows)
    for indicator, total in catalogue.indicators.items():
        yield from _paginated("indicator", paths.indicator_path(*indicator), "indicator.html",
                              {"indicator": indicator}, total,
                              lambda indicator=indicator: catalogue.indicator_index.drilldown(
                                  indicator))


def _paginated(kind: str, path: str, template: str, subject: dict[str, Any], total: int,
               rows: Callable[[], list[Row]]) -> Iterator[Page]:
    """A drill-down's pages, `DRILLDOWN_ROWS` rules a page: `x.html`, then `x-2.html`, ..."""
    count = max(1, -(-total // DRILLDOWN_ROWS))
    stem = path.removesuffix(".html")
    pages = [path, *(f"{stem}-{number}.html" for number in range(2, count + 1))]

    def context(index: int) -> dict[str, Any]:
        every = rows()
        return {**subject, "total": len(every), "pager": Pager(pages, index),
                "rows": every[index * DRILLDOWN_ROWS:(index + 1) * DRILLDOWN_ROWS],
                "techniques": technique_counts(every)}

    for index, page in enumerate(pages):
        yield Page(kind, page, template, lambda index=index: context(index))


def technique_counts(rows: list[Row]) -> list[tuple[str, int]]:
    """Techniques of a drill-down's rules, most rules first."""
    counts = Counter(technique for row in rows for technique in row["techniques"])
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
