"""Microsoft Sentinel / Defender analytic rules and hunting queries (Azure/Azure-Sentinel).

Reads every rule YAML of a checkout, folder or archive: `Detections/`, `Hunting Queries/`,
`Solutions/*/Analytic Rules/` and `Solutions/*/Hunting Queries/`. One file is one rule; its KQL
`query` becomes a condition tree through `loaders.sentinel_kusto`, its tables and ASIM parser
calls become event types. Rule metadata Sentinel has no column for (tactics, data connectors,
query frequency and period, trigger) goes into `properties`; `properties["kind"]` tells an
analytic rule from a hunting query and `properties["yaml_kind"]` keeps the YAML `kind`.
Duplicate rule ids (Detections and Solutions share some) are left to the build to report.
Rule format: https://github.com/Azure/Azure-Sentinel/wiki/Query-Style-Guide
"""

from __future__ import annotations

import logging
import re
from typing import Any

import yaml

from kb.model import RuleRecord, Unparsed, broken_record
from kb.sources import RuleFile, Source
from loaders.sentinel_kusto import parse_kusto

logger = logging.getLogger(__name__)

VENDOR = "sentinel"
LANGUAGE = "kusto"

_RULE_GLOBS = (
    "Detections/**/*.yaml", "Detections/**/*.yml",
    "Hunting Queries/**/*.yaml", "Hunting Queries/**/*.yml",
    "Solutions/*/Analytic Rules/**/*.yaml", "Solutions/*/Analytic Rules/**/*.yml",
    "Solutions/*/Hunting Queries/**/*.yaml", "Solutions/*/Hunting Queries/**/*.yml",
)
_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")
_TOP_KEY = re.compile(r"^(query|id|requiredDataConnectors|queryFrequency|relevantTechniques)"
                      r"\s*:", re.MULTILINE)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def detect(source: Source) -> bool:
    """Whether the source's root is laid out like Azure-Sentinel."""
    return any(True for pattern in _RULE_GLOBS for _ in source.glob(pattern))


def sniff(path: str, text: str) -> bool:
    """Whether a lone YAML file is a Sentinel rule: a `query` with an `id` and Sentinel keys."""
    if not path.lower().endswith((".yaml", ".yml")):
        return False
    keys = set(_TOP_KEY.findall(text))
    return {"query", "id"} <= keys and bool(keys & {"requiredDataConnectors", "queryFrequency",
                                                    "relevantTechniques"})


def rule_paths(source: Source) -> list[str]:
    """Rule files of a checkout; in any other folder or archive, every YAML that sniffs."""
    paths = sorted({path for pattern in _RULE_GLOBS for path in source.glob(pattern)})
    if not paths:
        candidates = [p for p in source.paths() if p.lower().endswith((".yaml", ".yml"))]
        paths = [p for p in candidates if sniff(p, source.read_text(p))]
    hunting = sum(1 for path in paths if "Hunting Queries/" in path)
    logger.info("%s: %d Sentinel rule files (%d in Hunting Queries folders)", source.name,
                len(paths), hunting)
    return paths


def load_context(source: Source | None) -> None:
    """Sentinel rules share nothing a loader must read first."""
    return None


def parse_file(rule_file: RuleFile, context: None = None) -> list[RuleRecord]:
    """One rule YAML as one record; never raises for bad content."""
    try:
        data, query_line = _load_yaml(rule_file.text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        logger.warning("%s:%s: not valid YAML", rule_file.path, line)
        return [broken_record(VENDOR, rule_file.path, LANGUAGE, "yaml", str(error), line)]
    if not isinstance(data, dict) or not data.get("id"):
        return [broken_record(VENDOR, rule_file.path, LANGUAGE, "not_a_rule",
                              "not a Sentinel rule: a mapping with an id is expected")]
    record = _record(rule_file.path, data)
    _read_query(record, data.get("query"), query_line)
    record.finish()
    if record.parse_status in ("partial", "none"):
        logger.warning("%s: KQL read %s, %d part(s) unparsed", rule_file.path,
                       record.parse_status, sum(p.kind == "unparsed" for p in record.problems))
    return [record]


def _load_yaml(text: str) -> tuple[Any, int]:
    """The YAML document and the file line where its query text starts."""
    loader = _LOADER(text.lstrip("\ufeff"))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, _query_line(node)


def _query_line(node: Any) -> int:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "query":
                block = value.style in ("|", ">")
                return value.start_mark.line + (2 if block else 1)
    return 1


def _record(path: str, data: dict[str, Any]) -> RuleRecord:
    return RuleRecord(
        vendor=VENDOR,
        native_id=str(data["id"]).strip(),
        title=str(data.get("name") or "").strip(),
        path=path,
        language=LANGUAGE,
        severity=str(data.get("severity") or "").strip().lower(),
        techniques=_techniques(data),
        properties=_properties(path, data),
    )


def _techniques(data: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for key in ("relevantTechniques", "techniques"):
        values = data.get(key) or []
        for value in values if isinstance(values, list) else [values]:
            found.extend(_TECHNIQUE.findall(str(value or "").upper()))
    return tuple(dict.fromkeys(found))


def _properties(path: str, data: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "kind": _rule_kind(path, data),
        "yaml_kind": str(data.get("kind") or ""),
        "tactics": [str(t) for t in _as_list(data.get("tactics")) if t],
        "required_data_connectors": _connectors(data.get("requiredDataConnectors")),
    }
    for key, name in (("queryFrequency", "query_frequency"), ("queryPeriod", "query_period"),
                      ("triggerOperator", "trigger_operator"),
                      ("triggerThreshold", "trigger_threshold"), ("version", "version")):
        if data.get(key) is not None:
            properties[name] = str(data[key])
    if data.get("tags"):
        properties["tags"] = [str(t) for t in _as_list(data["tags"]) if not isinstance(t, dict)]
    return properties


def _rule_kind(path: str, data: dict[str, Any]) -> str:
    """`hunting` for a hunting query, `analytic` for an analytic rule."""
    if "Hunting Queries/" in path:
        return "hunting"
    if path.startswith("Detections/") or "/Analytic Rules/" in path:
        return "analytic"
    return "analytic" if data.get("kind") or data.get("queryFrequency") else "hunting"


def _connectors(value: Any) -> list[dict[str, Any]]:
    connectors = []
    for item in _as_list(value):
        if isinstance(item, dict):
            connectors.append({"connector_id": str(item.get("connectorId") or ""),
                               "data_types": [str(t) for t in _as_list(item.get("dataTypes"))]})
    return connectors


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _read_query(record: RuleRecord, query: Any, query_line: int) -> None:
    if not isinstance(query, str) or not query.strip():
        record.parse_status = "no_query"
        return
    try:
        result = parse_kusto(query.replace("\r\n", "\n"), query_line)
    except RecursionError:
        record.condition = Unparsed(query.strip()[:200], "query nested too deeply")
        return
    except Exception as error:  # a reader fault must not stop the build
        logger.warning("%s: KQL reader fault: %r", record.path, error)
        record.condition = Unparsed(query.strip()[:200], f"reader fault: {error!r}")
        return
    record.condition = result.tree
    record.event_types = result.event_types
    record.problems.extend(result.problems)
