"""Google SecOps (Chronicle) YARA-L 2.0 rules, read with our own grammar (`yaral.lark`).

The grammar turns a `.yaral` file into a small syntax tree; this module then reads the
`events` section as the rule's condition: event lines are ANDs, a comparison on a UDM path
(`$e.principal.process.command_line`) filters the field `principal.process.command_line`, and
`re.regex()`, `strings.contains()` and kin become their operators. Joins and placeholder
declarations (`$host = $e.principal.hostname`) give no row; a comparison made on a placeholder
reads as one on the field the placeholder stands for. `match`, `outcome` and `condition` only
go into `properties`: they hold windows, counts and outputs, never filters.

Each event variable's `metadata.event_type` (and `metadata.log_type`, or an entity
`graph.metadata.entity_type`) gives the rule's event types, e.g. `chronicle:udm/PROCESS_LAUNCH`.
Techniques come from `meta` (`technique`, `mitre`, `mitre_attack_*`); technique names without an
id are kept in `properties["technique_names"]` for the build to resolve through ATT&CK.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedInput, VisitError

from kb.model import (
    And,
    Node,
    Not,
    Or,
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

VENDOR = "chronicle"
LANGUAGE = "yaral"
SUFFIX = ".yaral"

_PARSER = Lark(
    Path(__file__).with_name("yaral.lark").read_text(encoding="utf-8"),
    parser="lalr",
    propagate_positions=True,
    maybe_placeholders=False,
)

_EMPTY = And(())  # a line that filters nothing (a join, a placeholder declaration)
_RULE_HEAD = re.compile(r"^\s*rule\s+(\w+)\s*\{", re.MULTILINE)
_TECHNIQUE_ID = re.compile(r"\bT(\d{4})(?:[./](\d{3}))?\b", re.IGNORECASE)
_TACTIC_ID = re.compile(r"\bTA\d{4}\b", re.IGNORECASE)
_CASE_WRAPPERS = frozenset({"strings.to_lower", "strings.to_upper"})
_STRING_FUNCTIONS = {
    "re.regex": "regex_match",
    "strings.contains": "contains",
    "strings.starts_with": "starts_with",
    "strings.ends_with": "ends_with",
    "net.ip_in_range_cidr": "cidr",
}
_ORDER_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "=", "!=": "!="}
_EVENT_TYPE_KEYS = {
    "metadata.event_type": "udm",
    "metadata.log_type": "log_type",
    "graph.metadata.entity_type": "entity",
}
_DEPRECATED_DIR = "_deprecated/"
_TIME_ARITHMETIC = re.compile(r"timestamp\.|\.seconds\b|_time\b")
_FIELD_PARTS = re.compile(r"\$(\w+)\.?(.*)", re.DOTALL)


# --- the loader interface ------------------------------------------------------------------


def detect(source: Source) -> bool:
    """Whether the source holds `.yaral` files."""
    return any(path.endswith(SUFFIX) for path in source.paths())


def sniff(path: str, text: str) -> bool:
    """Whether a lone file is a YARA-L rule: its suffix, or a `rule name {` with `events:`."""
    return path.endswith(SUFFIX) or (_RULE_HEAD.search(text) is not None and "events:" in text)


def rule_paths(source: Source) -> list[str]:
    """Every `.yaral` file of the source, deprecated ones included."""
    return [path for path in source.paths() if path.endswith(SUFFIX)]


def load_context(source: Source | None) -> dict[str, str]:
    """Rule names used by more than one file: each later file gets `<name>@<path>` as its id.

    The first file keeps the plain name, community rules before deprecated ones, so that a
    rule uid stays `chronicle:<rule name>` wherever it can and no two files share a uid.
    """
    if source is None:
        return {}
    first: dict[str, str] = {}
    renamed: dict[str, str] = {}
    for path in sorted(rule_paths(source), key=lambda p: (_is_deprecated(p), p)):
        for name in _RULE_HEAD.findall(source.read_text(path)):
            if name in first and first[name] != path:
                renamed[f"{path}#{name}"] = f"{name}@{path}"
            first.setdefault(name, path)
    logger.info("%s: %d YARA-L rule names, %d used again by a later file", source.name,
                len(first), len(renamed))
    return renamed


def parse_file(rule_file: RuleFile, context: dict[str, str] | None = None) -> list[RuleRecord]:
    """One record per rule of the file; a file the grammar refuses is one broken record."""
    try:
        rules = parse_text(rule_file.text)
    except UnexpectedInput as error:
        line, column = (error.line, error.column) if error.line > 0 else (None, None)
        logger.warning("%s:%s:%s: not valid YARA-L", rule_file.path, line, column)
        return [broken_record(VENDOR, rule_file.path, LANGUAGE, "syntax",
                              f"not valid YARA-L: {_error_text(error)}", line, column)]
    if not rules:
        return [broken_record(VENDOR, rule_file.path, LANGUAGE, "syntax", "no rule in the file")]
    return [_record(rule, rule_file.path, context or {}).finish() for rule in rules]


def parse_text(text: str) -> list[_Rule]:
    """The rules of a YARA-L file as syntax trees; raises lark's `UnexpectedInput`."""
    tree = _PARSER.parse(text)
    try:
        return _Builder(text).transform(tree)
    except VisitError as error:
        raise error.orig_exc from error


def _error_text(error: UnexpectedInput) -> str:
    token = getattr(error, "token", None)
    if token is not None:
        return f"unexpected {str(token)[:40]!r}" if str(token) else "unexpected end of file"
    char = getattr(error, "char", "")
    return f"unexpected character {char!r}" if char else type(error).__name__


def _is_deprecated(path: str) -> bool:
    return path.startswith(f"rules/{_DEPRECATED_DIR}") or f"/{_DEPRECATED_DIR}" in path


# --- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """An event field: `$e.principal.hostname` is var `e`, path `principal.hostname`."""

    var: str
    path: str


@dataclass(frozen=True)
class _Var:
    """A placeholder or outcome variable such as `$hostname`."""

    name: str


@dataclass(frozen=True)
class _Lit:
    """A literal: kind is string, regex, number, bool or reflist; value as the rule means it."""

    kind: str
    value: str


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...]
    text: str


@dataclass(frozen=True)
class _Opaque:
    """Arithmetic, counts and other values no row is made from."""

    text: str


@dataclass(frozen=True)
class _Cmp:
    left: Any
    op: str
    right: Any
    text: str


@dataclass(frozen=True)
class _Bool:
    kind: str  # "and", "or" or "not"
    children: tuple[Any, ...]
    text: str


@dataclass
class _Rule:
    name: str
    line: int
    meta: list[tuple[str, str]]
    events: list[Any]
    match: dict[str, Any]
    outcome: list[str]
    condition: str


@v_args(meta=True)
class _Builder(Transformer):
    """Builds `_Rule`s from the parse tree; method names follow the grammar's rules."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def _slice(self, meta: Any) -> str:
        if getattr(meta, "empty", True):
            return ""
        return " ".join(self._text[meta.start_pos:meta.end_pos].split())

    def start(self, meta: Any, children: list[_Rule]) -> list[_Rule]:
        return children

    def rule(self, meta: Any, children: list[Any]) -> _Rule:
        rule = _Rule(str(children[0]), meta.line, [], [], {}, [], "")
        for kind, content in children[1:]:
            if kind == "meta":
                rule.meta.extend(content)
            elif kind == "events":
                rule.events.extend(content)
            elif kind == "match":
                rule.match = content
            elif kind == "outcome":
                rule.outcome.extend(content)
            elif kind == "condition":
                rule.condition = content
        return rule

    def meta_section(self, meta: Any, children: list[tuple[str, str]]) -> tuple[str, Any]:
        return "meta", children

    def meta_entry(self, meta: Any, children: list[Any]) -> tuple[str, str]:
        return str(children[0]), children[1].value

    def events_section(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return "events", children

    def match_section(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        variables = [child for child in children if type(child) is str]
        window = next(str(c) for c in children if isinstance(c, Token) and c.type == "DURATION")
        return "match", {"variables": variables, "window": window, "text": self._slice(meta)}

    def match_var(self, meta: Any, children: list[Token]) -> str:
        return str(children[0])

    def window_anchor(self, meta: Any, children: list[Token]) -> Token:
        return Token("ANCHOR", self._slice(meta))

    def outcome_section(self, meta: Any, children: list[str]) -> tuple[str, Any]:
        return "outcome", children

    def outcome_entry(self, meta: Any, children: list[Any]) -> str:
        return str(children[0])

    def condition_section(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return "condition", self._slice(meta).removeprefix("condition").lstrip(" :")

    def options_section(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return "options", children

    def option_entry(self, meta: Any, children: list[Any]) -> tuple[str, str]:
        return str(children[0]), children[1].value

    def or_expr(self, meta: Any, children: list[Any]) -> _Bool:
        return _Bool("or", tuple(children), self._slice(meta))

    def and_expr(self, meta: Any, children: list[Any]) -> _Bool:
        return _Bool("and", tuple(children), self._slice(meta))

    def not_(self, meta: Any, children: list[Any]) -> _Bool:
        return _Bool("not", (children[-1],), self._slice(meta))

    def nocase(self, meta: Any, children: list[Any]) -> Any:
        return children[0]

    def compare(self, meta: Any, children: list[Any]) -> _Cmp:
        return _Cmp(children[0], str(children[1]), children[2], self._slice(meta))

    def in_list(self, meta: Any, children: list[Any]) -> _Cmp:
        reflist = next(c for c in children if isinstance(c, Token) and c.type == "REFLIST")
        return _Cmp(children[0], "in", _Lit("reflist", str(reflist)), self._slice(meta))

    def list_kind(self, meta: Any, children: list[Token]) -> str:
        return str(children[0]).lower()

    def arith(self, meta: Any, children: list[Any]) -> _Opaque:
        return _Opaque(self._slice(meta))

    def quantified(self, meta: Any, children: list[Token]) -> _Field:
        return self.field(meta, children[1:])

    def field(self, meta: Any, children: list[Token]) -> _Field:
        var, path = _FIELD_PARTS.fullmatch(str(children[0])).groups()
        return _Field(var, path)

    def var(self, meta: Any, children: list[Token]) -> _Var:
        return _Var(str(children[0]))

    def count(self, meta: Any, children: list[Token]) -> _Opaque:
        return _Opaque(str(children[0]))

    def call(self, meta: Any, children: list[Any]) -> _Call:
        return _Call(str(children[0]), tuple(children[1:]), self._slice(meta))

    def string(self, meta: Any, children: list[Token]) -> _Lit:
        return _Lit("string", _unescape(str(children[0])[1:-1]))

    def raw_string(self, meta: Any, children: list[Token]) -> _Lit:
        return _Lit("string", str(children[0])[1:-1])

    def regex(self, meta: Any, children: list[Token]) -> _Lit:
        return _Lit("regex", str(children[0])[1:-1])

    def number(self, meta: Any, children: list[Token]) -> _Lit:
        return _Lit("number", str(children[0]))

    def boolean(self, meta: Any, children: list[Token]) -> _Lit:
        return _Lit("bool", str(children[0]).lower())

    def __default__(self, data: str, children: list[Any], meta: Any) -> Tree:
        return Tree(data, children, meta)


def _unescape(text: str) -> str:
    """A double-quoted YARA-L string's value: `\\\\` is one backslash, `\\"` a quote."""
    if "\\" not in text:
        return text
    return re.sub(r"\\([\\\"'])", r"\1", text)


# --- the record ----------------------------------------------------------------------------


def _record(rule: _Rule, path: str, renamed: dict[str, str]) -> RuleRecord:
    meta = _meta_dict(rule.meta)
    deprecated = _is_deprecated(path)
    record = RuleRecord(
        vendor=VENDOR,
        native_id=renamed.get(f"{path}#{rule.name}", rule.name),
        title=_first(meta, "rule_name") or rule.name,
        path=path,
        language=LANGUAGE,
        status="deprecated" if deprecated else "",
        deprecated=deprecated,
        severity=(_first(meta, "severity") or "").lower(),
        platforms=_platforms(meta),
    )
    if record.native_id != rule.name:
        record.problems.append(Problem(
            "duplicate_id", f"rule name {rule.name!r} is also used by another file", rule.line))

    _add_attack(record, meta)
    condition = _Condition()
    record.condition = condition.build(rule.events)
    record.event_types = condition.event_types()
    record.properties.update(_properties(rule, meta, condition))
    return record


def _meta_dict(entries: list[tuple[str, str]]) -> dict[str, list[str]]:
    meta: dict[str, list[str]] = {}
    for key, value in entries:
        meta.setdefault(key, []).append(value)
    return meta


def _first(meta: dict[str, list[str]], key: str) -> str:
    values = meta.get(key)
    return values[0] if values else ""


def _platforms(meta: dict[str, list[str]]) -> tuple[str, ...]:
    found = [part.strip().lower() for key in ("platform", "product")
             for value in meta.get(key, []) for part in value.split(",")]
    return tuple(dict.fromkeys(p for p in found if p))


def _add_attack(record: RuleRecord, meta: dict[str, list[str]]) -> None:
    """Technique ids found in the technique keys of `meta`; names and tactics into properties."""
    techniques: list[str] = []
    names: list[str] = []
    tactics: list[str] = []
    for key, values in meta.items():
        lowered = key.lower()
        if "tactic" in lowered:
            tactics.extend(_tactics(values))
        elif _is_technique_key(lowered):
            for value in values:
                techniques.extend(_technique_ids(value))
                tactics.extend(_leftover_tactics(value, lowered))
                names.extend(_technique_names(value, lowered))
    record.techniques = tuple(dict.fromkeys(techniques))
    if names:
        record.properties["technique_names"] = list(dict.fromkeys(names))
    if tactics:
        record.properties["tactics"] = list(dict.fromkeys(tactics))


def _is_technique_key(key: str) -> bool:
    return "technique" in key or key == "mitre" or key == "mitre_attack_url"


def _technique_ids(value: str) -> list[str]:
    return [f"T{main}.{sub}" if sub else f"T{main}"
            for main, sub in _TECHNIQUE_ID.findall(value)]


def _technique_names(value: str, key: str) -> list[str]:
    """A technique key whose value holds no id names the technique (`Impair Defenses: ...`)."""
    if key in ("mitre", "mitre_attack_url") or _TECHNIQUE_ID.search(value):
        return []
    return [value.strip()] if value.strip() else []


def _leftover_tactics(value: str, key: str) -> list[str]:
    """`mitre = "T1505, Persistence"`: the parts that are not technique ids are tactics."""
    if key != "mitre":
        return []
    parts = (part.strip() for part in value.split(","))
    return [part for part in parts if part and not _TECHNIQUE_ID.fullmatch(part)]


def _tactics(values: list[str]) -> list[str]:
    parts = (part.strip() for value in values for part in value.split(","))
    return [part.upper() if _TACTIC_ID.fullmatch(part) else part for part in parts if part]


def _properties(rule: _Rule, meta: dict[str, list[str]], condition: _Condition) -> dict:
    properties: dict[str, Any] = {
        "rule_name": rule.name,
        "meta": {key: values[0] if len(values) == 1 else values for key, values in meta.items()},
        "event_variables": condition.variables(),
        "outcome_variables": rule.outcome,
        "condition": rule.condition,
    }
    if rule.match:
        properties["match"] = {k: v for k, v in rule.match.items() if k != "text"}
    if condition.time_windows:
        properties["time_windows"] = condition.time_windows
    if condition.reference_lists:
        properties["reference_lists"] = list(dict.fromkeys(condition.reference_lists))
    return properties


# --- the events section as a condition tree ------------------------------------------------


class _Condition:
    """Turns the events section into a condition tree, noting event types and list lookups."""

    def __init__(self) -> None:
        self.bindings: dict[str, Any] = {}
        self.reference_lists: list[str] = []
        self.time_windows: list[str] = []
        self._selections: dict[str, dict[str, list[str]]] = {}
        self._fields: dict[str, dict[str, None]] = {}

    def build(self, events: list[Any]) -> Node | None:
        if not events:
            return None
        for statement in events:
            self._bind(statement)
        tree = _all(self._node(statement, negated=False) for statement in events)
        return None if tree == _EMPTY else tree

    def event_types(self) -> tuple[str, ...]:
        keys = [f"{VENDOR}:{kind}/{value}" for selections in self._selections.values()
                for kind, values in selections.items() for value in values]
        return tuple(dict.fromkeys(keys))

    def variables(self) -> dict[str, dict[str, list[str]]]:
        names = dict.fromkeys([*self._selections, *self._fields])
        return {f"${name}": {"event_types": self._selections.get(name, {}).get("udm", []),
                             "fields": list(self._fields.get(name, {}))} for name in names}

    # Placeholders: `$host = $e.principal.hostname` (either way round) binds `$host`.
    def _bind(self, statement: Any) -> None:
        if isinstance(statement, _Bool) and statement.kind == "and":
            for child in statement.children:
                self._bind(child)
        elif isinstance(statement, _Cmp) and statement.op == "=":
            for var, other in ((statement.left, statement.right),
                               (statement.right, statement.left)):
                if isinstance(var, _Var) and isinstance(other, _Field | _Call):
                    self.bindings.setdefault(var.name, other)

    def _node(self, expr: Any, negated: bool) -> Node:
        match expr:
            case _Bool(kind="and"):
                return _all(self._node(child, negated) for child in expr.children)
            case _Bool(kind="or"):
                return _any(self._node(child, negated) for child in expr.children)
            case _Bool(kind="not"):
                return _negate(self._node(expr.children[0], not negated))
            case _Cmp():
                return self._compare(expr, negated)
            case _Call():
                return self._function(expr)
            case _Lit(kind="bool"):
                return _EMPTY
        text = getattr(expr, "text", "") or _describe(expr)
        return Unparsed(text, "not a condition")

    def _function(self, call: _Call) -> Node:
        op = _STRING_FUNCTIONS.get(call.name)
        if op is None:
            return Unparsed(call.text, f"unsupported function {call.name}()")
        if len(call.args) < 2 or not isinstance(call.args[1], _Lit):
            return Unparsed(call.text, f"{call.name}() without a literal pattern")
        field = self._subject(call.args[0])
        if field is None:
            return Unparsed(call.text, f"{call.name}() on something other than a field")
        value = call.args[1].value
        self._note_field(call.args[0], field)
        return Pred(field, op, (value,), computed=_is_computed(self._resolve(call.args[0])))

    def _compare(self, cmp: _Cmp, negated: bool) -> Node:
        left, op, right = cmp.left, cmp.op, cmp.right
        if isinstance(left, _Lit) and not isinstance(right, _Lit):
            left, op, right = right, _FLIPPED[op], left
        if isinstance(left, _Call) and left.name in _STRING_FUNCTIONS and _is_bool(right):
            node = self._function(left)
            return node if (right.value == "true") == (op == "=") else _negate(node)
        if not isinstance(right, _Lit):
            return _EMPTY  # a join, a placeholder or a field-to-field comparison: no row
        if isinstance(left, _Opaque) and _TIME_ARITHMETIC.search(left.text):
            self.time_windows.append(cmp.text)
            return _EMPTY  # `86400 > timestamp.current_seconds() - $e...seconds`: a window
        field = self._subject(left)
        if field is None:
            return Unparsed(cmp.text, "comparison on a value that is not a field")
        self._note_field(left, field)
        self._note_selection(left, op, right, negated)
        return _predicate(field, op, right, cmp.text, _is_computed(self._resolve(left)),
                          self.reference_lists)

    def _resolve(self, expr: Any) -> Any:
        """The field or function a value stands for, looking through placeholders and case."""
        seen: set[str] = set()
        while True:
            if isinstance(expr, _Var) and expr.name in self.bindings and expr.name not in seen:
                seen.add(expr.name)
                expr = self.bindings[expr.name]
            elif isinstance(expr, _Call) and expr.name in _CASE_WRAPPERS and len(expr.args) == 1:
                expr = expr.args[0]
            else:
                return expr

    def _subject(self, expr: Any) -> str | None:
        resolved = self._resolve(expr)
        if isinstance(resolved, _Field):
            return resolved.path
        if isinstance(resolved, _Call) and self._mentions_field(resolved):
            return self._computed_name(resolved.text)
        return None

    def _mentions_field(self, call: _Call) -> bool:
        for arg in call.args:
            resolved = self._resolve(arg)
            if isinstance(resolved, _Field):
                return True
            if isinstance(resolved, _Call) and self._mentions_field(resolved):
                return True
        return False

    def _computed_name(self, text: str) -> str:
        """A function's text with event variables dropped and bound placeholders replaced:
        `re.replace($e.target.user.userid, ...)` reads `re.replace(target.user.userid, ...)`."""
        def placeholder(match: re.Match[str]) -> str:
            bound = self._resolve(_Var(match.group(0)))
            return bound.path if isinstance(bound, _Field) else match.group(0)

        text = re.sub(r"\$\w+\.", "", text)
        return re.sub(r"\$\w+\b(?!\.)", placeholder, text)

    def _note_field(self, expr: Any, field: str) -> None:
        resolved = self._resolve(expr)
        if isinstance(resolved, _Field):
            self._fields.setdefault(resolved.var, {})[field] = None

    def _note_selection(self, left: Any, op: str, right: _Lit, negated: bool) -> None:
        resolved = self._resolve(left)
        kind = _EVENT_TYPE_KEYS.get(resolved.path) if isinstance(resolved, _Field) else None
        if kind and op == "=" and right.kind == "string" and not negated:
            values = self._selections.setdefault(resolved.var, {}).setdefault(kind, [])
            if right.value not in values:
                values.append(right.value)


def _predicate(field: str, op: str, value: _Lit, text: str, computed: bool,
               reference_lists: list[str]) -> Node:
    negated = op == "!="
    if value.kind == "reflist":
        reference_lists.append(value.value)
        return Pred(field, "in", (value.value,), computed=computed)
    if value.kind == "regex" and op in ("=", "!="):
        return Pred(field, "regex_match", (value.value,), negated, computed)
    if op in ("=", "!=") and value.kind == "string" and value.value == "":
        return Pred(field, "is_not_null", ("",), not negated, computed)
    if op in ("=", "!="):
        return Pred(field, "eq", (value.value,), negated, computed)
    if op in _ORDER_OPS and value.kind == "number":
        return Pred(field, _ORDER_OPS[op], (value.value,), computed=computed)
    return Unparsed(text, f"unsupported comparison {op} with a {value.kind}")


def _is_bool(expr: Any) -> bool:
    return isinstance(expr, _Lit) and expr.kind == "bool"


def _is_computed(expr: Any) -> bool:
    return isinstance(expr, _Call)


def _describe(expr: Any) -> str:
    match expr:
        case _Field():
            return f"${expr.var}.{expr.path}"
        case _Var():
            return expr.name
        case _Lit():
            return expr.value
    return str(expr)


def _all(nodes: Any) -> Node:
    kept = [node for node in nodes if node != _EMPTY]
    return and_(*kept) if kept else _EMPTY


def _any(nodes: Any) -> Node:
    """An OR; equalities on one field merge into one `in` comparison, as a value list would."""
    kept = [node for node in nodes if node != _EMPTY]
    return _merge_equalities(or_(*kept)) if kept else _EMPTY


def _merge_equalities(node: Node) -> Node:
    if not isinstance(node, Or):
        return node
    groups: dict[tuple[str, bool], list[str]] = {}
    for child in node.children:
        if isinstance(child, Pred) and child.op in ("eq", "in") and not child.negated:
            groups.setdefault((child.field, child.computed), []).extend(child.values)
    children: list[Node] = []
    placed: set[tuple[str, bool]] = set()
    for child in node.children:
        key = (child.field, child.computed) if isinstance(child, Pred) else None
        if key in groups and child.op in ("eq", "in") and not child.negated:
            if key not in placed and len(groups[key]) > 1:
                placed.add(key)
                children.append(Pred(key[0], "in", tuple(dict.fromkeys(groups[key])),
                                     computed=key[1]))
            elif key not in placed:
                children.append(child)
            continue
        children.append(child)
    return or_(*children)


def _negate(node: Node) -> Node:
    """NOT of a node; a negated single comparison simply flips, NOT NOT cancels out."""
    match node:
        case Pred():
            return Pred(node.field, node.op, node.values, not node.negated, node.computed)
        case Not():
            return node.child
        case And(children=()):
            return node
    return Not(node)
