"""The site's content, page by page: which pages exist, what each shows and what links where.

`Catalogue.build` answers the guide and every drill-down for every page at once
(`kb.site.drilldowns`), decides which indicator pages are worth writing (one a page links to)
and lays out the ATT&CK matrix of the index.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kb.graph.backend import Row
from kb.site import drilldowns
from kb.site.data import SiteData
from kb.site.drilldowns import GuidePage, Indicator, IndicatorIndex, NeighbourIndex

logger = logging.getLogger(__name__)

# Lower bounds of the colour classes h1..h5 (h0 is none): rules, then vendors.
RULE_SCALE = (1, 3, 10, 30, 100)
VENDOR_SCALE = (1, 2, 3, 4, 5)


def heat(count: int, scale: tuple[int, ...] = RULE_SCALE) -> int:
    """The colour class of a count: how many of the scale's bounds it reaches."""
    return sum(1 for bound in scale if count >= bound)


@dataclass
class Cell:
    """One technique in the matrix."""

    id: str
    name: str
    rules: int
    vendors: int
    subtechniques: list[Cell] = field(default_factory=list)


@dataclass
class Column:
    tactic: Row
    cells: list[Cell]

    @property
    def covered(self) -> int:
        return sum(1 for cell in self.cells if cell.rules)


@dataclass
class Catalogue:
    data: SiteData
    limit: int
    fields: dict[str, list[Row]]
    event_types: dict[str, list[Row]]
    neighbour_index: NeighbourIndex
    indicator_index: IndicatorIndex
    technique_pages: list[str]
    technique_set: frozenset[str] = frozenset()
    indicators: dict[Indicator, int] = field(default_factory=dict)
    single_users: dict[Indicator, str] = field(default_factory=dict)

    @classmethod
    def build(cls, data: SiteData, limit: int = drilldowns.GUIDE_LIMIT) -> Catalogue:
        pages = [tid for tid, row in data.techniques.items()
                 if not row["revoked"] or data.scope_rules(tid, include_deprecated=True)]
        catalogue = cls(
            data=data, limit=limit,
            fields=drilldowns.field_drilldowns(data),
            event_types=drilldowns.event_type_drilldowns(data),
            neighbour_index=NeighbourIndex(data),
            indicator_index=IndicatorIndex(data),
            technique_pages=pages)
        catalogue.technique_set = frozenset(pages)
        catalogue._choose_indicators()
        return catalogue

    def guide(self, technique: str) -> GuidePage:
        """A technique's guide, worked out when its page is rendered (by whichever renderer
        takes the page)."""
        return drilldowns.guide_page(self.data, technique, self.limit)

    def neighbours(self, uid: str) -> list[Row]:
        return self.neighbour_index.neighbours(uid)

    def _choose_indicators(self) -> None:
        """A page for each indicator its drill-down lists several rules for (with their
        count); an indicator of a single rule links to that rule instead."""
        seen: set[Indicator] = set()
        for rows in self.data.predicates.values():
            for row in rows:
                key = (row["field"], row["op"], row["value"])
                if key in seen:
                    continue
                seen.add(key)
                users = self.indicator_index.rules(key)
                if len(users) > 1:
                    self.indicators[key] = len(users)
                elif users:
                    self.single_users[key] = next(iter(users))
        logger.info("site: %d indicator pages, %d indicators of a single rule",
                    len(self.indicators), len(self.single_users))

    # --- the matrix --------------------------------------------------------------------------

    def matrix(self) -> list[Column]:
        """Tactics in matrix order, each with its current techniques by name."""
        current = {tid: row for tid, row in self.data.techniques.items()
                   if not row["revoked"] and not row["deprecated"]}
        columns = []
        for tactic in self.data.tactics:
            parents = [row for row in current.values() if not row["is_subtechnique"]
                       and tactic["shortname"] in row["tactics"]]
            cells = []
            for row in sorted(parents, key=lambda row: (row["name"], row["id"])):
                subs = sorted((current[child] for child in self.data.children.get(row["id"], [])
                               if child in current), key=lambda sub: (sub["name"], sub["id"]))
                cells.append(self._cell(row, [self._cell(sub, []) for sub in subs]))
            columns.append(Column(tactic, cells))
        return columns

    def _cell(self, row: Row, subs: list[Cell]) -> Cell:
        uids = self.data.scope_rules(row["id"])
        vendors = {self.data.rules[uid]["vendor"] for uid in uids}
        return Cell(row["id"], row["name"], len(uids), len(vendors), subs)

    def matrix_data(self) -> dict[str, Any]:
        """What the index's script needs to recount the matrix under filters, and to search."""
        rules = [uid for uid, rule in self.data.rules.items()
                 if not rule["deprecated"] and rule["techniques"]]
        vendors = sorted({self.data.rules[uid]["vendor"] for uid in rules})
        domains = sorted({self.data.rules[uid]["domain"] or "" for uid in rules} - {""})
        platforms = [name for name, _ in Counter(
            p for uid in rules for p in self.data.rules[uid]["platforms"]).most_common()]
        position = {uid: index for index, uid in enumerate(rules)}
        return {
            "vendors": vendors, "domains": domains, "platforms": platforms,
            "rules": [[vendors.index(rule["vendor"]),
                       domains.index(rule["domain"]) if rule["domain"] in domains else -1,
                       [platforms.index(p) for p in rule["platforms"]]]
                      for rule in (self.data.rules[uid] for uid in rules)],
            "scope": {tid: [position[uid] for uid in self.data.scope_rules(tid)]
                      for tid in self.technique_pages if self.data.scope_rules(tid)},
            "scales": {"rules": RULE_SCALE, "vendors": VENDOR_SCALE},
            "search": [[tid, self.data.techniques[tid]["name"]]
                       for tid in sorted(self.technique_pages, key=_technique_order)],
        }

    def vendor_stats(self) -> list[Row]:
        """Rules and techniques per vendor, for the index."""
        stats: dict[str, Row] = {}
        for rule in self.data.rules.values():
            row = stats.setdefault(rule["vendor"], {"vendor": rule["vendor"], "rules": 0,
                                                    "current": 0, "techniques": set()})
            row["rules"] += 1
            if not rule["deprecated"]:
                row["current"] += 1
                row["techniques"].update(rule["techniques"])
        return [{**row, "techniques": len(row["techniques"])}
                for _, row in sorted(stats.items())]

    def sources(self) -> list[Row]:
        """The sources of the build: name, vendor, where they were read and at which commit."""
        info = self.data.info
        commits: dict[str, str] = {}
        for rule in self.data.rules.values():
            if rule.get("commit"):
                commits.setdefault(rule["source"], rule["commit"])
        return [{"name": key.removeprefix("source:"), "vendor": vendor,
                 "origin": info.get(f"origin:{key.removeprefix('source:')}", ""),
                 "commit": commits.get(key.removeprefix("source:"), "")}
                for key, vendor in sorted(info.items()) if key.startswith("source:")]


def _technique_order(technique: str) -> tuple[int, int]:
    base, _, sub = technique[1:].partition(".")
    return int(base), int(sub or 0)
