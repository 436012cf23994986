"""The answers of the guide and drill-down queries for every page at once, from `SiteData`.

Each function here answers what one canned query answers for one parameter value, for every
value in one pass: `technique_guide` is `kb.queries.guide` (the technique and guide_* queries),
`field_drilldowns`, `event_type_drilldowns` and `IndicatorIndex` are the field, event-type
and indicator drill-downs, `rule_neighbours` is rule_neighbours. Asking the engine once per
page costs minutes on the full catalogue; tests hold every answer here equal to the canned
query's on small knowledge bases and on the Sigma snapshot.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from kb.graph.backend import Row
from kb.queries import SAMPLE_VALUES, Guide, _field_uses
from kb.site.data import SiteData

logger = logging.getLogger(__name__)

GUIDE_LIMIT = 25
NEIGHBOURS = 10

# --- the authoring guide ---------------------------------------------------------------------


def technique_header(data: SiteData, technique: str) -> Row:
    """The `technique` query's row: ATT&CK facts, sub-technique and rule counts."""
    row = {key: data.techniques[technique][key] for key in (
        "id", "name", "tactics", "platforms", "is_subtechnique", "parent", "deprecated",
        "revoked", "replaced_by", "url")}
    row["subtechniques"] = len(data.children.get(technique, []))
    row["rules"] = len(data.scope_rules(technique))
    return row


@dataclass
class _Tally:
    """Rules per key, over the predicate rows of a technique's rules."""

    events: Counter = field(default_factory=Counter)
    field_rules: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    field_ops: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    field_values: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set))
    indicators: dict[tuple[str, str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set))
    reach: dict[tuple[str, str, str], int] = field(default_factory=dict)
    exclusions: dict[tuple[str, str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set))


@dataclass
class GuidePage:
    """A technique's guide, and the op each sample value of its fields section was taken
    under (keyed by field and value), so that the value can link to its indicator."""

    guide: Guide
    sample_ops: dict[tuple[str, str], str]


def technique_guide(data: SiteData, technique: str, limit: int = GUIDE_LIMIT) -> Guide:
    """What `kb.queries.guide(backend, technique, limit=limit)` answers, with no query."""
    return guide_page(data, technique, limit).guide


def guide_page(data: SiteData, technique: str, limit: int = GUIDE_LIMIT) -> GuidePage:
    uids = data.scope_rules(technique)
    tally = _tally(data, uids)
    result = Guide(technique=technique_header(data, technique))
    result.events = _events(data, tally, limit)
    field_rows = guide_field_rows(tally, limit)
    result.fields = _field_uses([dict(row) for row in field_rows])
    result.indicators = [
        {"field": f, "op": op, "value": v, "rules": len(rules), "reach": tally.reach[(f, op, v)]}
        for (f, op, v), rules in sorted(tally.indicators.items(), key=lambda item: (
            -len(item[1]), -tally.reach[item[0]], *item[0]))[:limit]]
    result.exclusions = [
        {"field": f, "op": op, "value": v, "rules": len(rules)}
        for (f, op, v), rules in sorted(tally.exclusions.items(),
                                        key=lambda item: (-len(item[1]), *item[0]))[:limit]]
    for row in _guide_rules(data, technique, uids):
        result.rules_by_vendor.setdefault(row["vendor"], []).append(row)
    result.sources = dict(sorted(data.info.items()))
    return GuidePage(result, _sample_ops(field_rows))


def _tally(data: SiteData, uids: list[str]) -> _Tally:
    tally = _Tally()
    for uid in uids:
        tally.events.update(data.rules[uid]["event_types"])
        for row in data.predicates[uid]:
            key = (row["field"], row["op"], row["value"])
            if row["field"]:
                tally.field_rules[row["field"]].add(uid)
                tally.field_ops[key[:2]].add(uid)
                tally.field_values[key[:2]].add(row["value"])
            if not row["negated"] and row["op"] != "is_not_null":
                tally.indicators[key].add(uid)
                tally.reach[key] = max(tally.reach.get(key, 0), row["reach"] or 0)
            if row["exclusion"]:
                tally.exclusions[_excluded(row)].add(uid)
    return tally


def _excluded(row: Row) -> tuple[str, str, str]:
    """What an event must match to be excluded by an exclusion row (as guide_exclusions)."""
    op = row["op"]
    if not row["negated"]:
        op = "is_null" if op == "is_not_null" else f"not {op}"
    return row["field"], op, row["value"]


def _events(data: SiteData, tally: _Tally, limit: int) -> list[Row]:
    counted = sorted(tally.events.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [{"event_type": key, "name": data.event_types[key]["name"],
             "source": data.event_types[key]["source"], "rules": rules}
            for key, rules in counted]


def guide_field_rows(tally: _Tally, limit: int) -> list[Row]:
    """The guide_fields rows: the `limit` fields most rules filter on, one row per op."""
    fields = sorted(tally.field_rules, key=lambda name: (-len(tally.field_rules[name]), name))
    rows = []
    for name in fields[:limit]:
        ops = [key for key in tally.field_ops if key[0] == name]
        for key in sorted(ops, key=lambda key: (-len(tally.field_ops[key]), key[1])):
            rows.append({"field": name, "rules": len(tally.field_rules[name]), "op": key[1],
                         "op_rules": len(tally.field_ops[key]),
                         "sample_values": sorted(tally.field_values[key])})
    return rows


def _guide_rules(data: SiteData, technique: str, uids: list[str]) -> list[Row]:
    scope = set(data.scope(technique))
    rows = []
    for uid in uids:
        rule = data.rules[uid]
        rows.append({key: rule[key] for key in (
            "vendor", "uid", "title", "language", "status", "severity", "parse_status")}
            | {"techniques": [t for t in rule["techniques"] if t in scope]})
    return sorted(rows, key=lambda row: (row["vendor"], row["title"] or "", row["uid"]))


def _sample_ops(field_rows: list[Row]) -> dict[tuple[str, str], str]:
    """The op of each sample value `kb.queries` shows: the first values of each field, op by
    op in the rows' order, sorted within an op."""
    ops: dict[tuple[str, str], str] = {}
    taken: Counter = Counter()
    for row in field_rows:
        room = max(SAMPLE_VALUES - taken[row["field"]], 0)
        chosen = sorted(row["sample_values"])[:room]
        taken[row["field"]] += len(chosen)
        for value in chosen:
            ops.setdefault((row["field"], value), row["op"])
    return ops


# --- drill-downs -----------------------------------------------------------------------------


def _rule_columns(rule: Row) -> Row:
    return {"uid": rule["uid"], "title": rule["title"], "vendor": rule["vendor"],
            "status": rule["status"], "deprecated": rule["deprecated"]}


def _order(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: (row["vendor"], row["uid"]))


def field_drilldowns(data: SiteData) -> dict[str, list[Row]]:
    """field_drilldown's rows for every field the graph holds, keyed by field name."""
    edges: dict[str, dict[str, set[tuple]]] = defaultdict(lambda: defaultdict(set))
    for uid, rows in data.predicates.items():
        if data.rules[uid]["deprecated"]:
            continue
        for row in rows:
            if not row["field"]:
                continue
            edge = (row["op"], row["negated"], row["exclusion"], row["raw_field"], row["field"])
            edges[row["field"]][uid].add(edge)
            edges[row["raw_field"]][uid].add(edge)
    result = {}
    for name in data.fields:
        rows = []
        for uid, matched in edges.get(name, {}).items():
            rule = data.rules[uid]
            rows.append(_rule_columns(rule) | {
                "raw_fields": sorted({edge[3] for edge in matched}),
                "ops": sorted({edge[0] for edge in matched}),
                "exclusions": sum(1 for edge in matched if edge[2]),
                "techniques": list(rule["techniques"])})
        result[name] = _order(rows)
    return result


def event_type_drilldowns(data: SiteData) -> dict[str, list[Row]]:
    """event_type_drilldown's rows for every event type, keyed by event-type key."""
    result: dict[str, list[Row]] = {key: [] for key in data.event_types}
    for rule in data.rules.values():
        if rule["deprecated"]:
            continue
        for key in rule["event_types"]:
            result[key].append(_rule_columns(rule) | {"techniques": list(rule["techniques"])})
    return {key: _order(rows) for key, rows in result.items()}


Indicator = tuple[str, str, str]


class IndicatorIndex:
    """indicator_drilldown's answer for any (field, op, value), from one index of every row.

    The query matches a row when its field (folded or as written) and its value (folded or as
    written) equal the asked ones, so each row is indexed under those four spellings.
    """

    def __init__(self, data: SiteData) -> None:
        self._data = data
        self._rows: dict[Indicator, list[tuple[str, Row]]] = defaultdict(list)
        for uid, rows in data.predicates.items():
            if data.rules[uid]["deprecated"]:
                continue
            for row in rows:
                spellings = {(f, row["op"], v) for f in (row["field"], row["raw_field"])
                             for v in (row["value"], row["raw_value"])}
                for key in spellings:
                    self._rows[key].append((uid, row))

    def rules(self, indicator: Indicator) -> set[str]:
        """Uids of the rules the drill-down lists."""
        return {uid for uid, _ in self._rows.get(indicator, ())}

    def drilldown(self, indicator: Indicator) -> list[Row]:
        by_rule: dict[str, list[Row]] = defaultdict(list)
        for uid, row in self._rows.get(indicator, ()):
            by_rule[uid].append(row)
        result = []
        for uid, rows in by_rule.items():
            rule = self._data.rules[uid]
            result.append(_rule_columns(rule) | {
                "ops": sorted({row["op"] for row in rows}),
                "negated": all(row["negated"] for row in rows),
                "exclusion": any(row["exclusion"] for row in rows),
                "raw_fields": sorted({row["raw_field"] for row in rows}),
                "raw_values": sorted({row["raw_value"] for row in rows}),
                "reach": max(row["reach"] or 0 for row in rows),
                "techniques": list(rule["techniques"])})
        return _order(result)


class NeighbourIndex:
    """rule_neighbours' answer for any rule: the non-deprecated rules sharing most indicators
    (same field, op and value, negated alike), the more specific first (fewer indicators of
    their own), with the shared count and each neighbour's own indicator count."""

    def __init__(self, data: SiteData) -> None:
        self._data = data
        self._keys = {uid: {(row["field"], row["value"], row["op"], row["negated"])
                            for row in rows} for uid, rows in data.predicates.items()}
        self._members: dict[tuple, list[str]] = defaultdict(list)
        for uid, rule_keys in self._keys.items():
            if not data.rules[uid]["deprecated"]:
                for key in rule_keys:
                    self._members[key].append(uid)
        self._rank = {uid: (len(rule_keys), uid) for uid, rule_keys in self._keys.items()}

    def neighbours(self, uid: str, limit: int = NEIGHBOURS) -> list[Row]:
        shared: Counter = Counter()
        for key in self._keys[uid]:
            shared.update(self._members[key])
        shared.pop(uid, None)
        rules = self._data.rules
        return [{"uid": other, "title": rules[other]["title"], "vendor": rules[other]["vendor"],
                 "shared": count, "indicators": self._rank[other][0]}
                for other, count in _most_shared(shared, self._rank, limit)]


def rule_neighbours(data: SiteData, limit: int = NEIGHBOURS) -> dict[str, list[Row]]:
    """rule_neighbours' rows for every rule."""
    index = NeighbourIndex(data)
    return {uid: index.neighbours(uid, limit) for uid in data.rules}


def _most_shared(shared: Counter, rank: dict[str, tuple[int, str]],
                 limit: int) -> list[tuple[str, int]]:
    """The first `limit` of (uid, count) by count, then by rank: the counts grouped first, so
    that only the groups that make the cut are sorted."""
    by_count: dict[int, list[str]] = defaultdict(list)
    for other, count in shared.items():
        by_count[count].append(other)
    best: list[tuple[str, int]] = []
    for count in sorted(by_count, reverse=True):
        best.extend((other, count) for other in sorted(by_count[count], key=rank.__getitem__))
        if len(best) >= limit:
            break
    return best[:limit]
