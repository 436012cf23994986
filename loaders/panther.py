"""Panther detections (panther-labs/panther-analysis): rule, scheduled rule and correlation rule
YAML, their Python logic, and saved or scheduled SQL queries.

A rule's YAML names its Python file in `Filename:`; that file is read with `ast` by
`loaders.panther_python` and never imported or run. When the file is not in the source (the
pinned snapshot holds YAML only), the rule is kept from its YAML with the status `no_query`.
Simple detections (`Detection:`) and `InlineFilters` are YAML match expressions, read here.
A correlation rule's logic is the rules it correlates: their conditions are ANDed (an `Absence`
step is a NOT); the correlation itself (groups, match criteria, windows) stays in properties.
Queries (`AnalysisType: saved_query | scheduled_query`) are `no_query` records with their SQL.

Event types: `LogTypes` give `panther:logtype/AWS.CloudTrail`; a query's tables and a scheduled
rule's queries give the log types whose tables they read (`panther_logs.public.aws_cloudtrail`).
"""

from __future__ import annotations

import logging
import posixpath
import re
from typing import Any

import yaml

from kb.model import Node, Pred, Problem, RuleRecord, Unparsed, broken_record
from kb.sources import RuleFile, Source
from loaders import panther_python
from loaders.panther_python import FALSE, TRUE, all_of, any_of, negate

logger = logging.getLogger(__name__)

VENDOR = "panther"
PYTHON = "panther-python"
YAML = "panther-yaml"
SQL = "panther-sql"
RULE_TYPES = frozenset({"rule", "scheduled_rule", "correlation_rule"})
QUERY_TYPES = frozenset({"saved_query", "scheduled_query"})

_ANALYSIS_TYPE = re.compile(r"^AnalysisType:\s*['\"]?(\w+)", re.MULTILINE)
_RULE_ID = re.compile(r"^RuleID:\s*['\"]?([^'\"\n#]+?)['\"]?\s*(?:#.*)?$", re.MULTILINE)
_REFERENCED_ID = re.compile(r"^\s+-?\s*RuleID:\s*['\"]?([^'\"\n#]+?)['\"]?\s*$", re.MULTILINE)
_TABLE = re.compile(
    r"\b(panther_(?:logs|cloudsecurity|signals|views|rule_matches|rule_errors)"
    r"\.public\.\w+|snowflake\.account_usage\.\w+)\b", re.IGNORECASE)
_ATTACK = re.compile(r"^\s*(?:(TA\d+)\s*:\s*)?(T\d{4}(?:\.\d{3})?)\s*$", re.IGNORECASE)
_TACTIC = re.compile(r"TA\d{4}", re.IGNORECASE)
_PLATFORMS = {
    "aws": "aws", "amazon": "aws", "gcp": "gcp", "azure": "azure", "okta": "okta",
    "github": "github", "gsuite": "google_workspace", "googleworkspace": "google_workspace",
    "onelogin": "onelogin", "microsoft365": "m365", "office365": "m365",
}

_CONDITIONS: dict[str, tuple[str, bool]] = {
    "Equals": ("eq", False), "DoesNotEqual": ("eq", True),
    "IsIn": ("in", False), "IsNotIn": ("in", True),
    "Contains": ("contains", False), "DoesNotContain": ("contains", True),
    "StartsWith": ("starts_with", False), "DoesNotStartWith": ("starts_with", True),
    "EndsWith": ("ends_with", False), "DoesNotEndWith": ("ends_with", True),
    "IsGreaterThan": ("gt", False), "IsGreaterThanOrEqualTo": ("gte", False),
    "IsLessThan": ("lt", False), "IsLessThanOrEqualTo": ("lte", False),
    "Exists": ("is_not_null", False), "DoesNotExist": ("is_not_null", True),
    "IsNotNull": ("is_not_null", False), "IsNull": ("is_not_null", True),
    "IsNotNullOrEmpty": ("is_not_null", False), "IsNullOrEmpty": ("is_not_null", True),
    "IsIPAddressInCIDR": ("cidr", False), "IsIPAddressNotInCIDR": ("cidr", True),
}
_ELEMENT_CONDITIONS = {"AnyElement": "any", "AllElements": "all", "OnlyOneElement": "any",
                       "NoElement": "none"}

Yaml = dict[str, Any]


# --- the loader interface ------------------------------------------------------------------


def detect(source: Source) -> bool:
    """Whether some YAML file near the top of the source is a Panther detection or query."""
    return any(_analysis_type(source.read_text(path)) for path in _yaml_paths(source)[:50])


def sniff(path: str, text: str) -> bool:
    """Whether a lone YAML file is a Panther detection or query (it has an AnalysisType)."""
    return path.endswith((".yml", ".yaml")) and _analysis_type(text) is not None


def rule_paths(source: Source) -> list[str]:
    """Every YAML file whose AnalysisType is a rule, scheduled or correlation rule, or query."""
    return [path for path in _yaml_paths(source) if _analysis_type(source.read_text(path))]


def load_context(source: Source | None) -> dict[str, Any]:
    """What rules of one source share: Python files, the rules correlations name, query tables.

    - `python`: path -> text of every `.py` file (rule logic, read later with `ast` only);
    - `rules`: RuleID -> path of every rule YAML; `texts`: path -> YAML text of the rules some
      correlation rule names (so that a correlation can read their logic);
    - `log_types`: table name (`aws_cloudtrail`) -> log type (`AWS.CloudTrail`), from LogTypes;
    - `query_tables`: QueryName -> the tables its SQL reads.
    """
    context: dict[str, Any] = {"python": {}, "rules": {}, "texts": {}, "log_types": {},
                               "query_tables": {}}
    if source is None:
        return context
    referenced: set[str] = set()
    for path in source.paths():
        if path.endswith(".py"):
            context["python"][path] = source.read_text(path)
    for path in rule_paths(source):
        _index_file(path, source.read_text(path), context, referenced)
    context["texts"] = {path: source.read_text(path) for rule_id, path in context["rules"].items()
                        if rule_id in referenced}
    logger.info("%s: %d Panther rules, %d queries, %d Python files", source.name,
                len(context["rules"]), len(context["query_tables"]), len(context["python"]))
    return context


def parse_file(rule_file: RuleFile, context: dict[str, Any] | None = None) -> list[RuleRecord]:
    """The one record of a detection or query YAML file (a broken record for bad YAML)."""
    document, problem = _load_yaml(rule_file)
    if problem is not None:
        return [problem]
    context = context or load_context(None)
    kind = str(document.get("AnalysisType") or "")
    if kind in QUERY_TYPES:
        return [_query_record(document, rule_file.path, context).finish()]
    if kind not in RULE_TYPES:
        return [broken_record(VENDOR, rule_file.path, YAML, "syntax",
                              f"not a Panther detection: AnalysisType {kind!r}")]
    return [_rule_record(document, rule_file.path, context, seen=frozenset()).finish()]


def _yaml_paths(source: Source) -> list[str]:
    return [path for path in source.paths() if path.endswith((".yml", ".yaml"))]


def _analysis_type(text: str) -> str | None:
    match = _ANALYSIS_TYPE.search(text)
    kind = match.group(1) if match else None
    return kind if kind in RULE_TYPES | QUERY_TYPES else None


def _index_file(path: str, text: str, context: dict[str, Any], referenced: set[str]) -> None:
    kind = _analysis_type(text)
    if kind in QUERY_TYPES:
        document = _safe_yaml(text)
        name = str(document.get("QueryName") or path)
        context["query_tables"][name] = _tables(str(document.get("Query") or ""))
        return
    rule_id = _RULE_ID.search(text)
    if rule_id:
        context["rules"].setdefault(rule_id.group(1).strip(), path)
    if kind == "correlation_rule":
        referenced.update(match.strip() for match in _REFERENCED_ID.findall(text))
    for log_type in _log_types_in(text):
        context["log_types"].setdefault(_table_name(log_type), log_type)


def _log_types_in(text: str) -> list[str]:
    block = re.search(r"^LogTypes:\s*\n((?:[ \t]+-.*\n?)+)", text, re.MULTILINE)
    if not block:
        return []
    return [item.strip().strip("'\"") for item in re.findall(r"-\s*(.+)", block.group(1))]


def _safe_yaml(text: str) -> Yaml:
    try:
        document = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return {}
    return document if isinstance(document, dict) else {}


def _load_yaml(rule_file: RuleFile) -> tuple[Yaml, RuleRecord | None]:
    try:
        document = yaml.load(rule_file.text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        logger.warning("%s: not valid YAML", rule_file.path)
        return {}, broken_record(
            VENDOR, rule_file.path, YAML, "syntax",
            f"not valid YAML: {getattr(error, 'problem', error)}",
            mark.line + 1 if mark else None, mark.column + 1 if mark else None)
    if not isinstance(document, dict):
        return {}, broken_record(VENDOR, rule_file.path, YAML, "syntax",
                                 "not a Panther detection: the file is not a YAML mapping")
    return document, None


# --- rules ---------------------------------------------------------------------------------


def _rule_record(document: Yaml, path: str, context: dict[str, Any],
                 seen: frozenset[str]) -> RuleRecord:
    kind = str(document["AnalysisType"])
    filename = str(document.get("Filename") or "")
    record = _base_record(document, path, PYTHON if filename else YAML)
    record.properties.update(_rule_properties(document, kind))

    if kind == "correlation_rule":
        _correlation(record, document, context, seen)
    elif filename:
        _python_logic(record, document, path, context)
    else:
        record.condition = _with_filters(document, _detection(document.get("Detection")))

    record.event_types = _event_types(document, kind, context)
    record.platforms = _platforms(record.event_types)
    return record


def _base_record(document: Yaml, path: str, language: str) -> RuleRecord:
    status = str(document.get("Status") or "").lower()
    record = RuleRecord(
        vendor=VENDOR,
        native_id=str(document.get("RuleID") or document.get("QueryName") or path).strip(),
        title=str(document.get("DisplayName") or document.get("QueryName")
                  or document.get("RuleID") or path),
        path=path,
        language=language,
        status=status,
        deprecated=status == "deprecated",
        severity=str(document.get("Severity") or "").lower(),
    )
    _add_reports(record, document.get("Reports"))
    return record


def _add_reports(record: RuleRecord, reports: Any) -> None:
    """`Reports: {MITRE ATT&CK: ["TA0003:T1505.003"]}`: techniques; other frameworks kept."""
    if not isinstance(reports, dict):
        return
    techniques: list[str] = []
    tactics: list[str] = []
    for framework, entries in reports.items():
        if str(framework).upper().replace(" ", "") != "MITREATT&CK":
            record.properties.setdefault("reports", {})[str(framework)] = _plain(entries)
            continue
        for entry in entries or []:
            match = _ATTACK.match(str(entry))
            if match is None:
                record.problems.append(Problem("attack", f"unreadable ATT&CK entry {entry!r}"))
                continue
            tactic = match.group(1) or ""
            if _TACTIC.fullmatch(tactic):
                tactics.append(tactic.upper())
            elif tactic:
                record.problems.append(Problem("attack", f"malformed tactic id in {entry!r}"))
            techniques.append(match.group(2).upper())
    record.techniques = tuple(dict.fromkeys(techniques))
    if tactics:
        record.properties["tactics"] = list(dict.fromkeys(tactics))


def _rule_properties(document: Yaml, kind: str) -> Yaml:
    properties = {"analysis_type": kind, "enabled": bool(document.get("Enabled", False))}
    for key, name in (("Tags", "tags"), ("LogTypes", "log_types"), ("Filename", "filename"),
                      ("ScheduledQueries", "scheduled_queries"), ("Threshold", "threshold"),
                      ("DedupPeriodMinutes", "dedup_minutes"), ("Reference", "reference")):
        if document.get(key) is not None:
            properties[name] = _plain(document[key])
    return properties


def _python_logic(record: RuleRecord, document: Yaml, path: str,
                  context: dict[str, Any]) -> None:
    filename = str(document["Filename"])
    python_path = posixpath.normpath(posixpath.join(posixpath.dirname(path), filename))
    text = context["python"].get(python_path)
    record.properties["python_path"] = python_path
    if text is None:
        filters = _inline_filters(document)
        if filters is None:
            record.parse_status = "no_query"
            return
        absent = Unparsed(filename, "the Python file is not in the source")
        record.condition = all_of(filters, absent)
        return
    record.condition = _with_filters(document, panther_python.rule_condition(text))


def _with_filters(document: Yaml, condition: Node) -> Node:
    filters = _inline_filters(document)
    return condition if filters is None else all_of(filters, condition)


def _inline_filters(document: Yaml) -> Node | None:
    """The InlineFilters match expression, or None when there is none or it filters nothing."""
    filters = document.get("InlineFilters")
    if not filters:
        return None
    node = _detection(filters)
    return None if node == TRUE else node


# --- YAML match expressions (simple detections, inline filters) ----------------------------
# https://docs.panther.com/detections/rules/writing-simple-detections/match-expression


def _detection(expression: Any, prefix: str = "") -> Node:
    if expression is None:
        return Unparsed("", "no Detection")
    if isinstance(expression, list):
        return all_of(*(_detection(item, prefix) for item in expression))
    if not isinstance(expression, dict):
        return Unparsed(str(expression)[:200], "not a match expression")
    for combinator in ("All", "Any", "OnlyOne", "None"):
        if combinator in expression:
            return _combined(combinator, expression[combinator], prefix)
    return _key_expression(expression, prefix)


def _combined(combinator: str, items: Any, prefix: str) -> Node:
    nodes = [_detection(item, prefix) for item in items or []]
    if combinator == "All":
        return all_of(*nodes)
    joined = any_of(*nodes) if nodes else FALSE  # OnlyOne reads as Any
    return negate(joined) if combinator == "None" else joined


def _key_expression(expression: Yaml, prefix: str) -> Node:
    field = _key(expression)
    condition = str(expression.get("Condition") or "")
    text = str(_plain(expression))[:200]
    if field is None:
        return Unparsed(text, "a match expression without a single key")
    field = f"{prefix}{field}"
    if condition in _ELEMENT_CONDITIONS:
        return _element_expression(condition, expression, field, text)
    if condition not in _CONDITIONS:
        return Unparsed(text, f"unsupported condition {condition or '(none)'}")
    op, negated = _CONDITIONS[condition]
    if op == "is_not_null":
        return Pred(field, op, ("",), negated)
    values = expression.get("Values", expression.get("Value"))
    values = values if isinstance(values, list) else [values]
    if any(isinstance(value, dict | list) or value is None for value in values):
        return Unparsed(text, "a value that is not a literal")
    if op == "in" and len(values) == 1:
        op = "eq"
    return Pred(field, op, tuple(_scalar(value) for value in values), negated)


def _element_expression(condition: str, expression: Yaml, field: str, text: str) -> Node:
    inner = expression.get("Expressions")
    if not isinstance(inner, list):
        return Unparsed(text, f"{condition} without Expressions")
    node = _detection(inner, f"{field}[*].")
    kind = _ELEMENT_CONDITIONS[condition]
    return negate(node) if kind == "none" else node


def _key(expression: Yaml) -> str | None:
    if expression.get("Key") is not None:
        return str(expression["Key"])
    if expression.get("KeyPath") is not None:
        return str(expression["KeyPath"])
    deep = expression.get("DeepKey")
    if isinstance(deep, list) and deep:
        return ".".join(str(part) for part in deep)
    return None


def _scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# --- correlation rules ---------------------------------------------------------------------


def _correlation(record: RuleRecord, document: Yaml, context: dict[str, Any],
                 seen: frozenset[str]) -> None:
    """The correlated rules' conditions, ANDed; `Absence: true` steps negated."""
    detection = document.get("Detection")
    record.properties["correlation"] = _plain(detection)
    steps = _steps(detection)
    record.properties["correlated_rules"] = [step["RuleID"] for step in steps]
    nodes: list[Node] = []
    missing: list[str] = []
    for step in steps:
        node = _correlated_condition(step["RuleID"], context, seen | {record.native_id})
        if node is None:
            missing.append(step["RuleID"])
            continue
        nodes.append(negate(node) if step.get("Absence") else node)
    if not nodes:
        record.parse_status = "no_query"
        return
    gaps = [Unparsed(rule_id, "the correlated rule's logic is not in the source")
            for rule_id in missing]
    record.condition = all_of(*nodes, *gaps)


def _steps(detection: Any) -> list[Yaml]:
    steps: list[Yaml] = []
    for block in detection if isinstance(detection, list) else [detection]:
        if not isinstance(block, dict):
            continue
        for kind in ("Group", "Sequence"):
            steps.extend(step for step in block.get(kind) or []
                         if isinstance(step, dict) and step.get("RuleID"))
    return steps


def _correlated_condition(rule_id: str, context: dict[str, Any],
                          seen: frozenset[str]) -> Node | None:
    path = context["rules"].get(rule_id)
    text = context["texts"].get(path) if path else None
    if text is None or rule_id in seen:
        return None
    document = _safe_yaml(text)
    if str(document.get("AnalysisType") or "") not in RULE_TYPES:
        return None
    record = _rule_record(document, path, context, seen)
    return None if record.parse_status == "no_query" else record.condition


# --- event types and platforms -------------------------------------------------------------


def _event_types(document: Yaml, kind: str, context: dict[str, Any]) -> tuple[str, ...]:
    log_types = [str(item) for item in document.get("LogTypes") or []]
    if kind == "scheduled_rule":
        for name in document.get("ScheduledQueries") or []:
            tables = context["query_tables"].get(str(name), [])
            log_types.extend(_table_event_types(tables, context))
    if kind == "correlation_rule":
        for step in _steps(document.get("Detection")):
            log_types.extend(_correlated_log_types(str(step["RuleID"]), context))
    keys = [key if ":" in key else f"{VENDOR}:logtype/{key}" for key in log_types]
    return tuple(dict.fromkeys(keys))


def _correlated_log_types(rule_id: str, context: dict[str, Any]) -> list[str]:
    path = context["rules"].get(rule_id)
    text = context["texts"].get(path) if path else None
    return _log_types_in(text) if text else []


def _table_event_types(tables: list[str], context: dict[str, Any]) -> list[str]:
    """`panther_logs.public.aws_cloudtrail` is log type AWS.CloudTrail when a rule names it."""
    keys = []
    for table in tables:
        log_type = context["log_types"].get(table.rsplit(".", 1)[-1])
        keys.append(f"{VENDOR}:logtype/{log_type}" if log_type else f"{VENDOR}:table/{table}")
    return keys


def _tables(sql: str) -> list[str]:
    return list(dict.fromkeys(match.lower() for match in _TABLE.findall(sql)))


def _table_name(log_type: str) -> str:
    return log_type.lower().replace(".", "_")


def _platforms(event_types: tuple[str, ...]) -> tuple[str, ...]:
    found = []
    for key in event_types:
        name = key.split("/", 1)[-1]
        prefix = re.split(r"[._]", name, maxsplit=1)[0].lower()
        if prefix in _PLATFORMS:
            found.append(_PLATFORMS[prefix])
    return tuple(dict.fromkeys(found))


# --- queries -------------------------------------------------------------------------------


def _query_record(document: Yaml, path: str, context: dict[str, Any]) -> RuleRecord:
    record = _base_record(document, path, SQL)
    sql = str(document.get("Query") or "")
    tables = _tables(sql)
    record.parse_status = "no_query"
    record.event_types = tuple(dict.fromkeys(_table_event_types(tables, context)))
    record.platforms = _platforms(record.event_types)
    record.properties.update({
        "analysis_type": str(document["AnalysisType"]),
        "enabled": bool(document.get("Enabled", False)),
        "sql": sql,
        "tables": tables,
    })
    for key, name in (("Tags", "tags"), ("Schedule", "schedule"), ("Lookback", "lookback")):
        if document.get(key) is not None:
            record.properties[name] = _plain(document[key])
    return record


def _plain(value: Any) -> Any:
    """YAML data as JSON-able values (dates become text)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
