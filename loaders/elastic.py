"""Elastic detection rules (elastic/detection-rules): TOML files with EQL, KQL, ES|QL or Lucene.

A checkout, folder or archive holds `rules/` (with `rules/_deprecated/`) and
`rules_building_block/`; each `.toml` file is one rule: a `[metadata]` table and a `[rule]`
table whose `type`, `language` and `query` say what it matches, with `[[rule.threat]]` for
ATT&CK. Each language has its own module: `elastic_eql`, `elastic_kuery`, `elastic_esql` and
`elastic_lucene`. Kibana `filters` stored with a rule are ANDed with its query.

Event types: every index pattern (`elastic:index/logs-endpoint.events.process-*`), every ES|QL
`from` source, every EQL event category (`elastic:event.category/process`) and every positive
`event.category` / `event.type` equality in the query.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from itertools import islice
from typing import Any

from kb.model import Node, Not, Pred, Problem, RuleRecord, Unparsed, and_, broken_record, flatten
from kb.sources import RuleFile, Source
from loaders.elastic_eql import parse_eql
from loaders.elastic_esql import parse_esql
from loaders.elastic_kuery import parse_kuery
from loaders.elastic_lucene import parse_lucene
from loaders.elastic_values import dsl_wildcard_parts, fold, grouped, not_null, values_pred

logger = logging.getLogger(__name__)

VENDOR = "elastic"

_RULE_DIRS = ("rules/", "rules_building_block/")
_RULE_TABLE = re.compile(r"^\[rule\]\s*$", re.MULTILINE)
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_ATTACK = "MITRE ATT&CK"
_EVENT_FIELDS = ("event.category", "event.type")
_KEPT_SETTINGS = (
    "threshold", "new_terms", "threat_index", "threat_query", "threat_language",
    "threat_mapping", "threat_indicator_path", "machine_learning_job_id", "anomaly_threshold",
    "alert_suppression", "event_category_override", "required_fields", "building_block_type",
    "timestamp_override", "interval", "from",
)
_KEPT_METADATA = ("maturity", "integration", "creation_date", "updated_date",
                  "deprecation_date", "min_stack_version")


# ---- the loader interface

def detect(source: Source) -> bool:
    """Whether a source holds Elastic rules: its first TOML files carry a `[rule]` table."""
    toml_paths = [path for path in source.paths() if path.endswith(".toml")]
    preferred = [path for path in toml_paths if path.startswith(_RULE_DIRS)] or toml_paths
    return any(sniff(path, source.read_text(path)) for path in islice(preferred, 5))


def sniff(path: str, text: str) -> bool:
    return path.endswith(".toml") and bool(_RULE_TABLE.search(text)) and "rule_id" in text


def rule_paths(source: Source) -> list[str]:
    """The rule files: every `.toml` under `rules/` and `rules_building_block/` when a source
    has those folders (as a checkout does), else every `.toml` file that looks like a rule."""
    toml_paths = [path for path in source.paths() if path.endswith(".toml")]
    in_rule_dirs = [path for path in toml_paths if path.startswith(_RULE_DIRS)]
    if in_rule_dirs:
        return in_rule_dirs
    return [path for path in toml_paths if sniff(path, source.read_text(path))]


def load_context(source: Source | None) -> None:
    """Elastic rules share nothing: each file stands alone."""
    return None


def parse_file(rule_file: RuleFile, context: object = None) -> list[RuleRecord]:
    """One rule file as one finished record; a file that is not a rule is a broken record."""
    try:
        document = tomllib.loads(rule_file.text)
    except tomllib.TOMLDecodeError as error:
        line, column = _toml_position(str(error))
        return [broken_record(VENDOR, rule_file.path, "", "toml", f"bad TOML: {error}",
                              line, column)]
    rule = document.get("rule")
    if not isinstance(rule, dict) or not isinstance(rule.get("rule_id"), str):
        return [broken_record(VENDOR, rule_file.path, "", "schema",
                              "not an Elastic rule: no [rule] table with a rule_id")]

    record = _record(document, rule, rule_file.path)
    try:
        _read_logic(record, rule)
    except Exception as error:  # untrusted input must never stop a load
        logger.warning("%s: query reading failed: %r", rule_file.path, error)
        record.condition = Unparsed(str(rule.get("query", "")), f"internal error: {error!r}")
    return [record.finish()]


def _toml_position(message: str) -> tuple[int | None, int | None]:
    match = _TOML_POSITION.search(message)
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


# ---- metadata

def _record(document: dict[str, Any], rule: dict[str, Any], path: str) -> RuleRecord:
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    maturity = str(metadata.get("maturity", ""))
    tags = _strings(rule.get("tags"))
    record = RuleRecord(
        vendor=VENDOR,
        native_id=rule["rule_id"],
        title=str(rule.get("name", "")),
        path=path,
        language=_language(rule),
        status=maturity,
        deprecated="_deprecated" in path.split("/") or maturity == "deprecated",
        severity=str(rule.get("severity", "")),
        platforms=_platforms(tags),
        techniques=_techniques(rule.get("threat", [])),
        event_types=tuple(f"elastic:index/{index}" for index in _strings(rule.get("index"))),
    )
    record.properties = _properties(rule, metadata, tags, path)
    return record


def _language(rule: dict[str, Any]) -> str:
    """The query language; Kibana's default for a query without one is KQL."""
    language = rule.get("language")
    if isinstance(language, str) and language:
        return language
    if "query" not in rule:
        return ""
    return {"eql": "eql", "esql": "esql"}.get(str(rule.get("type")), "kuery")


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _platforms(tags: list[str]) -> tuple[str, ...]:
    platforms = [tag.split(":", 1)[1].strip().lower() for tag in tags if tag.startswith("OS:")]
    return tuple(dict.fromkeys(platforms))


def _techniques(threats: Any) -> tuple[str, ...]:
    ids: list[str] = []
    for threat in _dicts(threats):
        if threat.get("framework", _ATTACK) != _ATTACK:
            continue
        for technique in _dicts(threat.get("technique")):
            ids.append(str(technique.get("id", "")).upper())
            ids.extend(str(sub.get("id", "")).upper()
                       for sub in _dicts(technique.get("subtechnique")))
    return tuple(dict.fromkeys(technique for technique in ids if technique))


def _tactics(threats: Any) -> list[str]:
    tactics = [str(tactic.get("id", "")) for threat in _dicts(threats)
               for tactic in _dicts([threat.get("tactic")])]
    return list(dict.fromkeys(tactic for tactic in tactics if tactic))


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The tables of a TOML array of tables; anything else in it is skipped."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _properties(rule: dict[str, Any], metadata: dict[str, Any], tags: list[str],
                path: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "rule_type": rule.get("type", ""),
        "risk_score": rule.get("risk_score"),
        "tags": tags,
        "index": _strings(rule.get("index")),
        "tactics": _tactics(rule.get("threat", [])),
        "building_block": path.startswith("rules_building_block/")
        or "building_block_type" in rule,
    }
    properties.update({key: _plain(rule[key]) for key in _KEPT_SETTINGS if key in rule})
    properties.update({key: _plain(metadata[key]) for key in _KEPT_METADATA if key in metadata})
    return properties


def _plain(value: Any) -> Any:
    """A TOML value as plain JSON data (TOML dates become text)."""
    return json.loads(json.dumps(value, default=str))


# ---- query logic

def _read_logic(record: RuleRecord, rule: dict[str, Any]) -> None:
    query = rule.get("query")
    if not isinstance(query, str):
        record.parse_status = "no_query"
        return

    condition, event_types, computed = _read_query(record, rule, query)
    filters = _filters(rule.get("filters"))
    record.condition = and_(condition, *filters) if filters else condition

    record.event_types = tuple(dict.fromkeys(
        [*record.event_types, *event_types, *_event_conditions(record.condition)]))
    if computed:
        record.problems.append(Problem(
            "computed_field",
            "filters on columns the query computes itself: " + ", ".join(computed)))
        record.properties["computed_columns"] = computed


def _read_query(record: RuleRecord, rule: dict[str, Any],
                query: str) -> tuple[Node, list[str], list[str]]:
    """The query's condition, the event types it selects and the computed columns it filters."""
    match record.language:
        case "eql":
            eql_query = parse_eql(query)
            category_field = str(rule.get("event_category_override") or "event.category")
            record.properties.update(eql_query.properties)
            event_types = [f"elastic:{category_field}/{c}" for c in eql_query.categories]
            return eql_query.condition, event_types, eql_query.computed
        case "kuery":
            return parse_kuery(query), [], []
        case "esql":
            esql_query = parse_esql(query)
            record.properties["esql_commands"] = esql_query.commands
            event_types = [f"elastic:index/{source}" for source in esql_query.sources]
            return esql_query.condition, event_types, esql_query.computed
        case "lucene":
            return parse_lucene(query), [], []
    return Unparsed(query, f"query language {record.language!r} not read"), [], []


def _event_conditions(condition: Node | None) -> list[str]:
    """Event types a query names as literal `event.category` / `event.type` equalities."""
    return [f"elastic:{row.field}/{row.value}" for row in flatten(condition)
            if row.field in _EVENT_FIELDS and row.op in {"eq", "in"} and not row.negated]


# ---- Kibana filters stored with a rule

def _filters(filters: Any) -> list[Node]:
    """Kibana filters as conditions; a disabled filter is left out, a negated one is a NOT."""
    nodes: list[Node] = []
    for kibana_filter in filters if isinstance(filters, list) else []:
        meta = kibana_filter.get("meta") if isinstance(kibana_filter, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        if meta.get("disabled"):
            continue
        node = _filter(kibana_filter)
        nodes.append(Not(node) if meta.get("negate") and not isinstance(node, Unparsed)
                     else node)
    return nodes


def _filter(kibana_filter: Any) -> Node:
    text = json.dumps(kibana_filter, sort_keys=True, default=str)
    if not isinstance(kibana_filter, dict):
        return Unparsed(text, "Kibana filter not read")
    query = kibana_filter.get("query")
    exists = kibana_filter.get("exists") or (query.get("exists") if isinstance(query, dict)
                                             else None)
    if isinstance(exists, dict) and isinstance(exists.get("field"), str):
        return not_null(exists["field"])
    if isinstance(query, dict) and len(query) == 1:
        kind, body = next(iter(query.items()))
        node = _dsl_leaf(kind, body)
        if node is not None:
            return node
    return Unparsed(text, "Kibana filter not read")


def _dsl_leaf(kind: str, body: Any) -> Node | None:
    """One Elasticsearch query DSL leaf (`match_phrase`, `match`, `term`, `terms`, `wildcard`)."""
    if not isinstance(body, dict) or len(body) != 1:
        return None
    field, spec = next(iter(body.items()))
    if kind == "terms" and isinstance(spec, list):
        return values_pred(field, [str(value) for value in spec])
    value = spec.get("value", spec.get("query")) if isinstance(spec, dict) else spec
    if isinstance(value, dict | list) or value is None:
        return None
    if kind == "wildcard":
        return grouped(field, [fold(dsl_wildcard_parts(str(value)))])
    if kind in {"match_phrase", "match", "term"}:
        return Pred(field, "eq", (_scalar_text(value),))
    return None


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

