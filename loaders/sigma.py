"""Sigma rules (SigmaHQ YAML), read with pySigma.

pySigma parses the YAML into detections and the condition into a tree; this module walks
that tree itself, so that each detection item's modifiers decide the operator and the values
stay as written (a `|windash` value is not expanded into its dash variants).

Correlation rules have no detection of their own: they are kept with the rules they
correlate in `properties` and the status `no_query`. Filter rules (Sigma filters) are kept
as rules whose whole condition is one top-level NOT, so their rows read as the exclusions
they add to the rules named in `properties["applies_to"]`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from itertools import islice
from typing import Any

import yaml
from sigma.conditions import (
    ConditionAND,
    ConditionIdentifier,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionSelector,
    SigmaCondition,
)
from sigma.exceptions import SigmaError, SigmaRegularExpressionError
from sigma.modifiers import (
    SigmaCaseSensitiveModifier,
    SigmaFieldReferenceModifier,
    SigmaWindowsDashModifier,
)
from sigma.policy.profiles import TrustedPolicy
from sigma.rule import SigmaDetection, SigmaDetectionItem
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from kb.model import (
    Node,
    Not,
    Pred,
    Problem,
    RuleRecord,
    Unparsed,
    and_,
    broken_record,
    or_,
)
from kb.sources import RuleFile, Source

logger = logging.getLogger(__name__)

VENDOR = "sigma"
LANGUAGE = "sigma"
RULE_GLOBS = ("rules*/**/*.yml", "deprecated/**/*.yml")

_TECHNIQUE_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
_ENDPOINT_PRODUCTS = frozenset({"windows", "linux", "macos"})
_CLOUD_PRODUCTS = frozenset({
    "aws", "azure", "gcp", "m365", "okta", "github", "google_workspace", "onelogin", "bitbucket",
    "cisco_duo", "salesforce", "kubernetes",
})
_NETWORK_CATEGORIES = frozenset({"dns", "firewall", "proxy", "network_connection"})
_COMPARE_OPS = {
    CompareOperators.LT: ("lt", False), CompareOperators.LTE: ("lte", False),
    CompareOperators.GT: ("gt", False), CompareOperators.GTE: ("gte", False),
    CompareOperators.NEQ: ("eq", True),
}
# Modifiers that change neither the operator nor the value (DESIGN.md: case flags, windash).
_IGNORED_MODIFIERS = (SigmaWindowsDashModifier, SigmaCaseSensitiveModifier)

Yaml = dict[str, Any]


def detect(source: Source) -> bool:
    """A source where at least half of the first rule files read as Sigma rules: a SigmaHQ
    checkout's `rules*/` folders, or else any folder of Sigma YAML files. Half, not all: a
    broken rule among the first must not hide the folder's vendor."""
    candidates = list(islice(source.glob("rules*/**/*.yml"), 20)) or list(islice(
        _yaml_paths(source), 20))
    hits = sum(sniff(path, source.read_text(path)) for path in candidates)
    return hits > 0 and 2 * hits >= len(candidates)


def sniff(path: str, text: str) -> bool:
    return path.endswith((".yml", ".yaml")) and "detection:" in text and "logsource:" in text


def rule_paths(source: Source) -> list[str]:
    """A checkout's rule folders; in any other folder, every YAML file (one that is not a
    Sigma rule is kept as a broken rule, so that it is counted and named)."""
    in_layout = sorted({path for pattern in RULE_GLOBS for path in source.glob(pattern)})
    return in_layout or list(_yaml_paths(source))


def _yaml_paths(source: Source) -> Iterator[str]:
    return (path for path in source.paths() if path.endswith((".yml", ".yaml")))


def load_context(source: Source | None) -> None:
    return None


def _yaml_error(rule_file: RuleFile, error: yaml.YAMLError) -> RuleRecord:
    """A broken record at the place the YAML parser stopped, naming where the construct it
    was reading began (an unclosed quote is found at the end of the file, opened earlier)."""
    message = str(getattr(error, "problem", None) or error).splitlines()[0]
    context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and start:
        message = f"{context} (line {start.line + 1}): {message}"
    mark = getattr(error, "problem_mark", None)
    if mark:
        line, column = mark.line + 1, mark.column + 1
    elif isinstance(error, yaml.reader.ReaderError):
        before = rule_file.text[:error.position]
        line, column = before.count("\n") + 1, error.position - before.rfind("\n")
    else:
        line = column = None
    return broken_record(VENDOR, rule_file.path, LANGUAGE, "syntax", f"not valid YAML: {message}",
                         line, column)


def parse_file(rule_file: RuleFile, context: object = None) -> list[RuleRecord]:
    try:
        document = yaml.load(rule_file.text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as error:
        return [_yaml_error(rule_file, error)]
    if not isinstance(document, dict):
        return [broken_record(VENDOR, rule_file.path, LANGUAGE, "syntax",
                              "not a Sigma rule: the file is not a YAML mapping")]
    return [_parse_document(document, rule_file.path).finish()]


def _parse_document(document: Yaml, path: str) -> RuleRecord:
    record = _metadata(document, path)
    if "correlation" in document:
        record.parse_status = "no_query"
        record.properties["correlation"] = _plain(document["correlation"])
        return record
    if "filter" in document:
        record.properties["applies_to"] = _plain(document["filter"].get("rules", []))
        record.condition = _filter_condition(document, record)
        return record
    record.condition = _rule_condition(document, record)
    return record


def _metadata(document: Yaml, path: str) -> RuleRecord:
    logsource = document.get("logsource") or {}
    status = str(document.get("status") or "")
    tags = [str(tag) for tag in document.get("tags") or []]
    record = RuleRecord(
        vendor=VENDOR,
        native_id=str(document.get("id") or path),
        title=str(document.get("title") or path),
        path=path,
        language=LANGUAGE,
        status=status,
        deprecated=status == "deprecated" or path.startswith("deprecated/"),
        severity=str(document.get("level") or ""),
        platforms=_platforms(logsource),
        techniques=_techniques(tags),
        event_types=_event_types(logsource),
    )
    record.properties.update(
        {"tags": tags, "logsource": _plain(logsource), "domain": _domain(logsource)})
    return record


def _techniques(tags: list[str]) -> tuple[str, ...]:
    found = (_TECHNIQUE_TAG.match(tag) for tag in tags)
    return tuple(dict.fromkeys(match.group(1).upper() for match in found if match))


def _event_types(logsource: Yaml) -> tuple[str, ...]:
    keys = ("product", "category", "service")
    parts = [str(logsource[key]) for key in keys if logsource.get(key)]
    return (f"{VENDOR}:{'/'.join(parts)}",) if parts else ()


def _platforms(logsource: Yaml) -> tuple[str, ...]:
    product = str(logsource.get("product") or "")
    return (product,) if product else ()


def _domain(logsource: Yaml) -> str:
    product = str(logsource.get("product") or "")
    if logsource.get("category") in _NETWORK_CATEGORIES or product == "zeek":
        return "network"
    if product in _ENDPOINT_PRODUCTS:
        return "endpoint"
    if product in _CLOUD_PRODUCTS:
        return "cloud"
    if logsource.get("category") == "webserver":
        return "application"
    return "other"


def _plain(value: Any) -> Any:
    """YAML data as JSON-able values (dates become text)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


# --- condition -----------------------------------------------------------------------------


def _rule_condition(document: Yaml, record: RuleRecord) -> Node | None:
    """The detection's condition as a tree. A selection or a condition pySigma cannot read
    becomes an Unparsed leaf of its own, so that the rest of the rule still counts."""
    detection = document.get("detection")
    if not isinstance(detection, dict):
        if detection is None:
            keys = ", ".join(map(str, document)) or "none"
            return Unparsed(f"top-level keys {keys}"[:500], "not a Sigma rule: no detection")
        return Unparsed(str(detection)[:500], "not a Sigma rule: detection is not a mapping")
    conditions = detection.get("condition")
    if not conditions:
        return Unparsed(str(detection)[:500], "unreadable detection: no condition")
    selections = {name: _selection(name, definition, record)
                  for name, definition in detection.items() if name != "condition"}
    return or_(*(_condition_text(str(text), selections)
                 for text in (conditions if isinstance(conditions, list) else [conditions])))


Selections = dict[str, SigmaDetection | Unparsed]


def _selection(name: str, definition: Any, record: RuleRecord) -> SigmaDetection | Unparsed:
    """pySigma's reading of one selection; a regex that RE2 refuses is read with Python's."""
    try:
        try:
            return SigmaDetection.from_definition(definition)
        except SigmaRegularExpressionError as error:
            record.problems.append(Problem("regex", str(error)))
            return SigmaDetection.from_definition(definition, policy=TrustedPolicy)
    except (SigmaError, ValueError, TypeError, KeyError) as error:
        return Unparsed(str(definition)[:500], f"unreadable selection {name}: {error}")


def _condition_text(text: str, selections: Selections) -> Node:
    """One condition. The deprecated pipe syntax (`selection | count() > 5`) keeps its
    selection logic, with the aggregation left unparsed."""
    logic, pipe, aggregation = text.partition("|")
    try:
        # Unprocessed, a condition's parse tree needs no detections: it only names them.
        parsed = SigmaCondition(logic, None).parse(postprocess=False)  # type: ignore[arg-type]
        tree = _condition(parsed, selections)
    except (SigmaError, ValueError, TypeError) as error:
        return Unparsed(text, f"unreadable condition: {error}")
    if not pipe:
        return tree
    return and_(tree, Unparsed(aggregation.strip(), "aggregation in the deprecated pipe syntax"))


def _filter_condition(document: Yaml, record: RuleRecord) -> Node | None:
    filter_rule = {**document, "detection": document["filter"]}
    filter_rule.setdefault("logsource", document.get("logsource") or {})
    inner = _rule_condition(filter_rule, record)
    return Not(inner) if inner is not None else None


def _condition(item: Any, selections: Selections) -> Node:
    match item:
        case ConditionNOT():
            return Not(_condition(item.args[0], selections))
        case ConditionAND():
            return and_(*(_condition(arg, selections) for arg in item.args))
        case ConditionOR():
            return or_(*(_condition(arg, selections) for arg in item.args))
        case ConditionIdentifier():
            return _named(item.identifier, selections)
        case ConditionSelector():
            return _selector(item, selections)
        case ConditionItem():
            return Unparsed(str(item), f"condition element {type(item).__name__}")
    return Unparsed(str(item), "unknown condition element")


def _named(name: str, selections: Selections) -> Node:
    selection = selections.get(name)
    if selection is None:
        return Unparsed(name, "the condition names a selection the detection does not define")
    return selection if isinstance(selection, Unparsed) else _detection(selection)


def _selector(item: ConditionSelector, selections: Selections) -> Node:
    referenced = item.resolve_referenced_detections(_Detections(selections))
    nodes = tuple(_named(ref.identifier, selections) for ref in referenced)
    return and_(*nodes) if item.cond_class is ConditionAND else or_(*nodes)


class _Detections:
    """The little of pySigma's SigmaDetections that selector resolution reads."""

    policy = TrustedPolicy

    def __init__(self, selections: Selections) -> None:
        self.detections = selections


def _detection(detection: SigmaDetection | SigmaDetectionItem) -> Node:
    if isinstance(detection, SigmaDetectionItem):
        return _detection_item(detection)
    children = tuple(_detection(item) for item in detection.detection_items)
    return and_(*children) if detection.item_linking is ConditionAND else or_(*children)


def _detection_item(item: SigmaDetectionItem) -> Node:
    if any(issubclass(m, SigmaFieldReferenceModifier) for m in item.modifiers):
        return and_()  # a field-to-field comparison gives no row (DESIGN.md)
    values = _modified_values(item)
    field = item.field or ""
    preds = [pred for value in values for pred in _preds(field, value)]
    linked_by_and = item.value_linking is ConditionAND
    node = and_(*preds) if linked_by_and else or_(*_merge_equalities(preds))
    return Not(node) if item.negated else node  # the `neq` modifier negates the whole item


def _modified_values(item: SigmaDetectionItem) -> list[SigmaType]:
    """The item's values after every modifier except those that change nothing for us."""
    modifiers = [m for m in item.modifiers if not issubclass(m, _IGNORED_MODIFIERS)]
    if len(modifiers) == len(item.modifiers):
        return item.value
    rebuilt = SigmaDetectionItem(item.field, modifiers, list(item.original_value or []))
    return rebuilt.value


def _merge_equalities(preds: list[Pred]) -> list[Pred]:
    """Two or more OR-ed equality values on one field become one `in` comparison."""
    equalities = [p for p in preds if p.op == "eq" and not p.negated]
    if len(equalities) < 2:
        return preds
    merged = Pred(equalities[0].field, "in", tuple(v for p in equalities for v in p.values))
    return [merged, *(p for p in preds if p not in equalities)]


def _preds(field: str, value: SigmaType) -> list[Pred]:
    match value:
        case SigmaExpansion():
            return [pred for sub in value.values for pred in _preds(field, sub)]
        case SigmaString():
            return [_string_pred(field, value)]
        case SigmaRegularExpression():
            return [Pred(field, "regex_match", (str(value.regexp),))]
        case SigmaCIDRExpression():
            return [Pred(field, "cidr", (value.cidr,))]
        case SigmaCompareExpression():
            op, negated = _COMPARE_OPS[value.op]
            return [Pred(field, op, (_number_text(value.number),), negated=negated)]
        case SigmaExists():
            return [Pred(field, "is_not_null", ("",), negated=not value.exists)]
        case SigmaNull():
            return [Pred(field, "is_not_null", ("",), negated=True)]
        case SigmaBool():
            return [Pred(field, "eq", (str(value.boolean).lower(),))]
        case SigmaNumber():
            return [Pred(field, _keyword_or("eq", field), (_number_text(value),))]
        case SigmaFieldReference():
            return []
    return [Pred(field, "eq", (str(value),))]


def _keyword_or(op: str, field: str) -> str:
    return op if field else "keyword"


def _number_text(number: SigmaNumber) -> str:
    return str(number.number)


def _string_pred(field: str, value: SigmaString) -> Pred:
    parts = list(value.s)
    placeholders = [p for p in parts if isinstance(p, Placeholder)]
    if placeholders:
        return Pred(field, "in", tuple(f"%{p.name}%" for p in placeholders))
    leading = bool(parts) and parts[0] == SpecialChars.WILDCARD_MULTI
    trailing = len(parts) > int(leading) and parts[-1] == SpecialChars.WILDCARD_MULTI
    middle = parts[int(leading):len(parts) - int(trailing)]
    if not field:
        return Pred("", "keyword", (_pattern_text(middle if not _has_wildcard(middle) else parts),))
    if _has_wildcard(middle):
        return Pred(field, "wildcard", (_pattern_text(parts),))
    text = _pattern_text(middle)
    if not text and (leading or trailing):
        return Pred(field, "is_not_null", ("",))
    op = {(True, True): "contains", (True, False): "ends_with",
          (False, True): "starts_with", (False, False): "eq"}[(leading, trailing)]
    return Pred(field, op, (text,))


def _has_wildcard(parts: list[Any]) -> bool:
    return any(isinstance(p, SpecialChars) for p in parts)


def _pattern_text(parts: list[Any]) -> str:
    symbols = {SpecialChars.WILDCARD_MULTI: "*", SpecialChars.WILDCARD_SINGLE: "?"}
    return "".join(symbols.get(p, p) if isinstance(p, SpecialChars) else str(p) for p in parts)
