"""Turn an ATT&CK catalogue and rule records into the rows of `GraphTables`."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from kb.events import classify, data_component_names
from kb.graph.backend import GraphTables, Row
from kb.model import PredicateRow, RuleRecord, tree_data
from kb.normalize import indicator
from loaders.attack import AttackCatalog

_ENDPOINT_PLATFORMS = frozenset({"windows", "linux", "macos"})


def graph_tables(catalog: AttackCatalog, records: Iterable[RuleRecord],
                 info: dict[str, str], commits: dict[str, str] | None = None) -> GraphTables:
    """The tables of a knowledge base; `commits` names each source's commit (by source name)."""
    tables = GraphTables()
    _add_attack(tables, catalog)
    known_techniques = catalog.technique_ids()
    fields: dict[str, set[tuple[str, bool]]] = defaultdict(set)
    values: dict[str, Row] = {}
    event_types: dict[str, Row] = {}
    for record in records:
        _add_rule(tables, record, known_techniques, (commits or {}).get(record.source_name, ""))
        _add_predicates(tables, record, fields, values)
        _add_event_types(tables, record, event_types)
    _add_reach(tables.rels["USES"], tables.nodes["Rule"])
    tables.nodes["Field"] = [field_row(name, uses) for name, uses in fields.items()]
    tables.nodes["Value"] = list(values.values())
    tables.rels["OF_FIELD"] = [{"_from": key, "_to": row["field"]} for key, row in values.items()
                               if row["field"]]
    tables.nodes["EventType"] = list(event_types.values())
    _add_feeds(tables, catalog, event_types)
    tables.nodes["KbInfo"] = [{"key": key, "value": value} for key, value in info.items()]
    return tables


def _add_attack(tables: GraphTables, catalog: AttackCatalog) -> None:
    tables.nodes["Technique"] = [{**t, "replaced_by": _replacement(catalog, t)}
                                 for t in catalog.techniques]
    tables.nodes["Tactic"] = [dict(t) for t in catalog.tactics]
    known = catalog.technique_ids()
    tactic_ids = {tactic["shortname"]: tactic["id"] for tactic in catalog.tactics}
    for technique in catalog.techniques:
        if technique["parent"] in known:
            tables.rels["SUBTECHNIQUE_OF"].append(
                {"_from": technique["id"], "_to": technique["parent"]})
        for tactic in technique["tactics"]:
            if tactic in tactic_ids:
                tables.rels["IN_TACTIC"].append({"_from": technique["id"],
                                                 "_to": tactic_ids[tactic]})
    _add_detection_model(tables, catalog)


def _add_detection_model(tables: GraphTables, catalog: AttackCatalog) -> None:
    components = {c["stix_id"]: c["id"] for c in catalog.data_components}
    analytics = {a["stix_id"]: a["id"] for a in catalog.analytics}
    known = catalog.technique_ids()
    tables.nodes["DataComponent"] = [
        {"id": c["id"], "name": c["name"], "stix_id": c["stix_id"]}
        for c in catalog.data_components]
    tables.nodes["Analytic"] = [
        {"id": a["id"], "name": a["name"], "platforms": a["platforms"], "stix_id": a["stix_id"]}
        for a in catalog.analytics]
    tables.nodes["DetectionStrategy"] = [
        {"id": s["id"], "name": s["name"], "stix_id": s["stix_id"]}
        for s in catalog.detection_strategies]
    for strategy in catalog.detection_strategies:
        tables.rels["STRATEGY_FOR"].extend(
            {"_from": strategy["id"], "_to": t} for t in strategy["techniques"] if t in known)
        tables.rels["HAS_ANALYTIC"].extend(
            {"_from": strategy["id"], "_to": analytics[a]} for a in strategy["analytics"]
            if a in analytics)
    for analytic in catalog.analytics:
        for source in analytic["log_sources"]:
            component = components.get(source.get("x_mitre_data_component_ref", ""))
            if component:
                tables.rels["NEEDS"].append({
                    "_from": analytic["id"], "_to": component,
                    "log_source": f"{source.get('name', '')}:{source.get('channel', '')}"})


def _replacement(catalog: AttackCatalog, technique: dict) -> str:
    current = catalog.resolve(technique["id"])
    return current if current != technique["id"] else ""


def _add_rule(tables: GraphTables, record: RuleRecord, known_techniques: set[str],
              commit: str) -> None:
    tables.nodes["Rule"].append({
        "uid": record.uid, "vendor": record.vendor, "native_id": record.native_id,
        "title": record.title, "language": record.language, "path": record.path,
        "source": record.source_name, "commit": commit, "status": record.status,
        "deprecated": record.deprecated,
        "severity": record.severity, "platforms": list(record.platforms),
        "domain": rule_domain(record), "parse_status": record.parse_status,
        "problem_count": len(record.problems),
        "properties": json.dumps(record.properties, sort_keys=True, default=str),
        "text": record.text,
        "condition": json.dumps(tree_data(record.condition), separators=(",", ":")),
    })
    tables.rels["DETECTS"].extend({"_from": record.uid, "_to": technique}
                                  for technique in record.techniques
                                  if technique in known_techniques)


def rule_domain(record: RuleRecord) -> str:
    """The rule's domain: the loader's word for it, else endpoint for an endpoint platform."""
    domain = record.properties.get("domain")
    if domain:
        return str(domain)
    return "endpoint" if _ENDPOINT_PLATFORMS & set(record.platforms) else "other"


def _add_predicates(tables: GraphTables, record: RuleRecord,
                    fields: dict[str, set[tuple[str, bool]]], values: dict[str, Row]) -> None:
    filters: dict[tuple[object, ...], Row] = {}
    uses: dict[tuple[object, ...], Row] = {}
    for row in record.predicates:
        field_name, op, value = indicator(row)
        props = {"op": op, "negated": row.negated, "exclusion": row.exclusion,
                 "raw_field": row.field}
        if field_name:
            fields[field_name].add(_field_use(row, record.vendor))
            edge = {"_from": record.uid, "_to": field_name, **props}
            filters.setdefault(tuple(edge.values()), edge)
        key = f"{field_name}={value}"
        values.setdefault(key, {"key": key, "field": field_name, "value": value})
        edge = {"_from": record.uid, "_to": key, **props, "raw_value": row.value}
        uses.setdefault(tuple(edge.values()), edge)
    tables.rels["FILTERS"].extend(filters.values())
    tables.rels["USES"].extend(uses.values())


def _add_reach(uses: list[Row], rules: list[Row]) -> None:
    """Corpus reach on every USES edge: the distinct non-deprecated rules using the same
    (field, op, value) unnegated, counted once here rather than by every query."""
    deprecated = {rule["uid"] for rule in rules if rule["deprecated"]}
    users: dict[tuple[str, str], set[str]] = defaultdict(set)
    for edge in uses:
        if not edge["negated"] and edge["_from"] not in deprecated:
            users[(edge["_to"], edge["op"])].add(edge["_from"])
    for edge in uses:
        edge["reach"] = len(users.get((edge["_to"], edge["op"]), ()))


def _field_use(row: PredicateRow, vendor: str) -> tuple[str, bool]:
    return f"{vendor}:{row.field}", bool(row.canonical_field)


def record_fields(record: RuleRecord) -> set[tuple[str, str, bool]]:
    """The (field, vendor:raw alias, mapped) uses a record adds to the Field nodes."""
    uses = set()
    for row in record.predicates:
        field_name = indicator(row)[0]
        if field_name:
            uses.add((field_name, *_field_use(row, record.vendor)))
    return uses


def field_row(name: str, uses: Iterable[tuple[str, bool]]) -> Row:
    """A Field node from every (alias, mapped) use of it, whatever order the rules came in:
    mapped when any rule's field normalised to it, aliases sorted."""
    uses = list(uses)
    return {"name": name, "mapped": any(mapped for _, mapped in uses),
            "aliases": sorted({alias for alias, _ in uses})}


def _add_event_types(tables: GraphTables, record: RuleRecord, event_types: dict[str, Row]) -> None:
    """OBSERVES edges, and each event type's place in the taxonomy (kb/events.py)."""
    for key in dict.fromkeys(record.event_types):
        if key not in event_types:
            vendor, _, name = key.partition(":")
            event_class = classify(key)
            event_types[key] = {
                "key": key, "name": name, "source": vendor,
                "category": event_class.category if event_class else "",
                "category_name": event_class.category_name if event_class else "",
                "telemetry": event_class.telemetry if event_class else ""}
        tables.rels["OBSERVES"].append({"_from": record.uid, "_to": key})


def _add_feeds(tables: GraphTables, catalog: AttackCatalog, event_types: dict[str, Row]) -> None:
    """FEEDS edges: each categorised event type to the ATT&CK data components its category feeds."""
    components = {c["name"]: c["id"] for c in catalog.data_components}
    for key, row in event_types.items():
        for name in data_component_names(row["category"]) if row["category"] else ():
            if name in components:
                tables.rels["FEEDS"].append({"_from": key, "_to": components[name]})
