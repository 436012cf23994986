"""Kusto (KQL) queries to condition trees, for the Microsoft Sentinel / Defender loader.

A query is cut into statements (`;`) and pipeline stages (`|`) here, by a small scanner that
knows KQL strings, comments and brackets; each stage body is then parsed by the lark grammar
`kusto.lark` (LALR) and turned into model nodes by `_ExprTransformer`. A parenthesised
sub-query (`join (T | where ...)`, `in (T | ...)`, `let x = (...)`) is replaced by one
same-length `SUBQUERY` token and parsed on its own, so a stage the grammar cannot read becomes
an `Unparsed` leaf and the rest of the query is kept.

Why a grammar of our own (measured on the 2022-02 Azure-Sentinel snapshot): PyPI's
`kusto-query-language-parser` 0.1.0 (an ANTLR grammar run by the pure-Python ANTLR runtime) read
198 of 200 sampled queries but took about 140 ms a query, four and a half minutes for the
snapshot, and fails a whole query on one bad token; `kustology` wraps Microsoft's .NET
`Kusto.Language` and needs a .NET runtime through pythonnet, which this project does not ship.
Either would still need the semantic pass below (lets, renames, computed columns), which is most
of the work. This reader reads 98.6% of the snapshot's 1,904 queries whole, in a few ms each.

Meaning, per docs/schema.md: pipeline stages are ANDs; `let` scalars and `dynamic([...])`
lists are substituted into comparisons; a tabular `let` counts only where it is used; `union`
is an OR of its branches; a `join`/`lookup` sub-query is ANDed (an anti-join is a NOT);
`x in (sub-query)` ANDs the sub-query (`!in` NOTs it) and gives no row for `x`. `extend`,
`project` and `project-rename` are followed, so a filter on a renamed column names its source;
a filter on a computed column keeps the rule's name, is marked computed and reported; a
threshold on an aggregate, a time window and a column-to-column comparison give no row. An
ASIM parser's filtering parameters (`imDns(domain_has_any=list)`) are predicates too.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lark import Lark, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedInput, VisitError

from kb.model import And, Node, Not, Pred, Problem, Unparsed, and_, flatten, or_

logger = logging.getLogger(__name__)

_GRAMMAR = Path(__file__).with_name("kusto.lark")
_STARTS = ["where_body", "assign_list"]
_PARSER = Lark(_GRAMMAR.read_text(encoding="utf-8"), parser="lalr", start=_STARTS,
               propagate_positions=True, maybe_placeholders=True)

_MAX_DEPTH = 24
_EMPTY = And(())

# ---- Scanner: strings, comments and brackets ----------------------------------------------

_STRING_OR_COMMENT = re.compile(r"""(?=[/`@"'hH])(?:
    //[^\n]*
  | ```[\s\S]*?```
  | [hH]?@"[^"\n]*(?:""[^"\n]*)*"
  | [hH]?@'[^'\n]*(?:''[^'\n]*)*'
  | [hH]?"(?:[^"\\\n]|\\.)*"
  | [hH]?'(?:[^'\\\n]|\\.)*'
)""", re.VERBOSE)
_OPEN, _CLOSE = "([{", ")]}"
_STRUCTURE = re.compile(r"[()\[\]{}|;,]")
_DATA_TABLE = re.compile(r"\s*(externaldata|datatable)\s*\(", re.IGNORECASE)
_SUB_OPEN, _SUB_CLOSE = "\u27e6", "\u27e7"


@lru_cache(maxsize=4096)
def mask(text: str) -> str:
    """The text with comments blanked and strings filled with quotes, offsets unchanged."""
    return _STRING_OR_COMMENT.sub(_fill, text)


def _fill(match: re.Match[str]) -> str:
    token = match.group(0)
    if token.startswith("//"):
        return " " * len(token)
    return re.sub(r"[^\n]", '"', token) if "\n" in token else '"' * len(token)


def uncomment(text: str) -> str:
    """The text with comments blanked, strings kept, offsets unchanged."""
    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        return " " * len(token) if token.startswith("//") else token
    return _STRING_OR_COMMENT.sub(fill, text)


def split_top(masked: str, separator: str) -> list[tuple[int, int]]:
    """Spans of `masked` between separators that sit outside every bracket."""
    spans, depth, start = [], 0, 0
    for match in _STRUCTURE.finditer(masked):
        char = match.group(0)
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth = max(depth - 1, 0)
        elif char == separator and depth == 0:
            spans.append((start, match.start()))
            start = match.start() + 1
    spans.append((start, len(masked)))
    return spans


def _piped_groups(masked: str) -> list[tuple[int, int]]:
    """Outermost `( ... )` groups holding a pipe of their own: sub-queries, as (open, close)."""
    stack: list[list] = []
    groups: list[tuple[int, int]] = []
    for match in _STRUCTURE.finditer(masked):
        index, char = match.start(), match.group(0)
        if char in _OPEN:
            stack.append([char, index, False])
        elif char in _CLOSE and stack:
            kind, start, piped = stack.pop()
            if kind == "(" and (piped or _DATA_TABLE.match(masked, start + 1, index)):
                groups.append((start, index))
        elif char == "|" and stack:
            stack[-1][2] = True
    groups.sort()
    outer: list[tuple[int, int]] = []
    for start, end in groups:
        if not outer or start > outer[-1][1]:
            outer.append((start, end))
    return outer


# ---- Values met while reading an expression -----------------------------------------------

@dataclass(frozen=True)
class _Col:
    """A column: the source field it stands for, or a column the rule computes."""

    field: str
    computed: bool = False
    aggregate: bool = False


@dataclass(frozen=True)
class _Lit:
    """Literal values, as the rule means them; kind is string, number, timespan, time or bool."""

    values: tuple[str, ...]
    kind: str = "string"


@dataclass(frozen=True)
class _Expr:
    """Any other value: a computation, a time function, a column-to-column expression."""

    text: str
    columns: tuple[_Col, ...] = ()
    function: str = ""


@dataclass(frozen=True)
class _Cond:
    """A boolean: a model node, or None where the comparison gives no row."""

    node: Node | None


@dataclass(frozen=True)
class _TabRef:
    """A tabular value used inside an expression (`in (sub-query)`, a tabular let)."""

    tab: Tab
    token: str


# ---- Tables, columns and the let scope -----------------------------------------------------

@dataclass
class Env:
    """Columns a pipeline stage can see: renames and computed columns; unknown names are source
    fields unless an aggregation closed the column set."""

    columns: dict[str, _Col] = field(default_factory=dict)
    closed: bool = False

    def lookup(self, name: str) -> _Col:
        if name in self.columns:
            return self.columns[name]
        return _Col(name, computed=True, aggregate=True) if self.closed else _Col(name)

    def copy(self, closed: bool | None = None) -> Env:
        return Env(dict(self.columns), self.closed if closed is None else closed)


@dataclass
class Tab:
    """A tabular result: the condition it carries, its columns and the event types it reads."""

    tree: Node = _EMPTY
    env: Env = field(default_factory=Env)
    events: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    data: str = ""


@dataclass(frozen=True)
class _Function:
    params: tuple[str, ...]
    body: str
    base: int


@dataclass
class Scope:
    """Let bindings, innermost first."""

    names: dict[str, object] = field(default_factory=dict)
    parent: Scope | None = None

    def get(self, name: str) -> object | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None


@dataclass
class KustoResult:
    """What a query gives the rule: its condition tree, event types and problems."""

    tree: Node
    event_types: tuple[str, ...]
    problems: list[Problem]


def _unique(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for group in groups for item in group))


def _not(node: Node) -> Node:
    return node if node == _EMPTY else Not(node)


# ---- String literals ------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def unquote(token: str) -> str:
    """The value of one KQL string literal: escapes undone, verbatim `@"..."` kept verbatim."""
    if token[:1] in "hH" and token[1:2] in "@\"'":
        token = token[1:]
    if token.startswith("```"):
        return token[3:-3]
    if token.startswith("@"):
        quote = token[1]
        return token[2:-1].replace(quote * 2, quote)
    return _ESCAPE.sub(_unescape_one, token[1:-1])


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 5 and code[0] == "u":
        return chr(int(code[1:], 16))
    return _ESCAPES.get(code, code)


# ---- Expressions to conditions --------------------------------------------------------------

_WRAPPERS = frozenset({
    "tostring", "tolower", "toupper", "toint", "tolong", "todouble", "toreal", "tobool",
    "toboolean", "todecimal", "toguid", "todynamic", "parse_json", "parsejson", "todatetime",
    "totimespan", "to_lower", "to_upper", "parse_xml",
})
_TIME_FUNCTIONS = frozenset({
    "ago", "now", "datetime", "todatetime", "startofday", "endofday", "startofweek",
    "endofweek", "startofmonth", "endofmonth", "startofyear", "endofyear", "datetime_add",
    "make_datetime", "totimespan", "timespan", "unixtime_seconds_todatetime",
})
_ARG_EXTREMES = frozenset({"arg_max", "arg_min", "argmax", "argmin"})
_PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
_SYMBOLIC_OPS = {
    "==": ("eq", False), "=~": ("eq", False), "!=": ("eq", True), "<>": ("eq", True),
    "!~": ("eq", True), "<": ("lt", False), "<=": ("lte", False), ">": ("gt", False),
    ">=": ("gte", False),
}
_WORD_OPS = {
    "has": "match", "contains": "contains", "startswith": "starts_with",
    "hasprefix": "starts_with", "endswith": "ends_with", "hassuffix": "ends_with",
}
_SYMMETRIC = frozenset({"eq"})


def operator(text: str) -> tuple[str, bool]:
    """A KQL comparison operator as (positive op, negated)."""
    if text in _SYMBOLIC_OPS:
        return _SYMBOLIC_OPS[text]
    word = text.lower()
    negated = word.startswith(("!", "not"))
    word = word.removeprefix("!").removeprefix("not")
    word = word.removesuffix("_cs").removesuffix("cs") if word not in _WORD_OPS else word
    return _WORD_OPS[word], negated


class _ExprTransformer(Transformer):
    """Builds values and model nodes from one stage body, reading names through the scope and
    the stage's columns. Rule methods take the children list (lark's fast path)."""

    def __init__(self, query: _Query, env: Env, scope: Scope, text: str,
                 search: bool = False) -> None:
        super().__init__(visit_tokens=False)
        self.query, self.env, self.scope, self.text, self.search = query, env, scope, text, search
        self.used: list[Tab] = []

    # -- atoms

    def name(self, children: list) -> str:
        (token,) = children
        text = str(token)
        return unquote(text.strip()[1:-1].strip()) if text.startswith("[") else text

    def string(self, children: list) -> _Lit:
        return _Lit(("".join(unquote(str(t)) for t in children),))

    def number(self, children: list) -> _Lit:
        (token,) = children
        return _Lit((str(token),), "number")

    def timespan(self, children: list) -> _Lit:
        (token,) = children
        return _Lit((str(token),), "timespan")

    def datetime(self, children: list) -> _Lit:
        (token,) = children
        return _Lit((str(token),), "time")

    def negative(self, children: list) -> object:
        (value,) = children
        if isinstance(value, _Lit) and value.kind in ("number", "timespan"):
            return _Lit(tuple("-" + v for v in value.values), value.kind)
        return _Expr("-", _columns(value))

    def star(self, children: list) -> _Col:
        return _Col("*")

    def column(self, children: list) -> object:
        (name,) = children
        bound = self.scope.get(name)
        if bound is not None:
            return self._bound(name, bound)
        if name.lower() in ("true", "false"):
            return _Lit((name.lower(),), "bool")
        if name.lower() == "null":
            return _Lit((), "null")
        if name.startswith("$"):
            return _Expr(name)
        return self.env.lookup(name)

    def _bound(self, name: str, bound: object) -> object:
        if isinstance(bound, Tab):
            self.used.append(bound)
            return _TabRef(bound, name)
        if isinstance(bound, _Function):
            return _Expr(name, function=name)
        return bound

    def subquery(self, children: list) -> _TabRef:
        (token,) = children
        tab = self.query.subquery(str(token), self.scope)
        self.used.append(tab)
        return _TabRef(tab, tab.data or "(sub-query)")

    def brackets(self, children: list) -> object:
        (args,) = children
        items = list(args or [])
        if all(isinstance(item, _Lit) for item in items):
            return _Lit(tuple(v for item in items for v in item.values), "list")
        return _Expr("[...]", _columns(*items))

    def dict_lit(self, children: list) -> _Expr:
        return _Expr("{...}")

    def pair(self, children: list) -> object:
        return children[-1]

    def args(self, children: list) -> list:
        return list(children)

    def named_arg(self, children: list) -> _Expr:
        name, value = children
        return _Expr(f"{name}=", _columns(value))

    # -- postfix and arithmetic

    def member(self, children: list) -> object:
        base, name = children
        if isinstance(base, _Col):
            return _Col(f"{base.field}.{name}", base.computed, base.aggregate)
        return _Expr(name, _columns(base))

    def index(self, children: list) -> object:
        base, key = children
        if isinstance(base, _Col) and isinstance(key, _Lit) and len(key.values) == 1:
            text = key.values[0]
            suffix = f"[{text}]" if key.kind == "number" else f".{text}"
            return _Col(base.field + suffix, base.computed, base.aggregate)
        return _Expr("[]", _columns(base, key))

    def arith(self, children: list) -> _Expr:
        left, op, right = children
        return _Expr(str(op), _columns(left, right))

    @v_args(meta=True)
    def call(self, meta, children: list) -> object:
        name, args = children
        args = list(args or [])
        function = name.lower()
        if function in _WRAPPERS and len(args) == 1 and not isinstance(args[0], _Cond):
            return args[0]
        special = getattr(self, "_fn_" + function, None)
        if special is not None:
            result = special(args)
            if result is not None:
                return result
        bound = self.scope.get(name)
        if isinstance(bound, _Function):
            return self._call_function(name, bound, args)
        if function in _TIME_FUNCTIONS:
            return _Expr(function, function=function)
        return _Expr(self._slice(meta), _columns(*args), function)

    def _call_function(self, name: str, function: _Function, args: list) -> object:
        tab = self.query.call_function(name, function, args, self.scope)
        self.used.append(tab)
        return _TabRef(tab, tab.data or name)

    def _slice(self, meta) -> str:
        return " ".join(self.text[meta.start_pos:meta.end_pos].split())

    def _fn_not(self, args: list) -> _Cond | None:
        if len(args) != 1:
            return None
        node = self.as_cond(args[0])
        return _Cond(None if node is None else _not(node))

    def _fn_isnotempty(self, args: list) -> _Cond | None:
        return self._null_test(args, negated=False)

    def _fn_isempty(self, args: list) -> _Cond | None:
        return self._null_test(args, negated=True)

    _fn_isnotnull = _fn_notempty = _fn_isnotempty
    _fn_isnull = _fn_isempty

    def _null_test(self, args: list, negated: bool) -> _Cond | None:
        if len(args) != 1:
            return None
        column = _as_column(args[0])
        if column is None:
            return _Cond(None)
        return _Cond(self.query.pred(column, "is_not_null", ("",), negated))

    def _fn_ipv4_is_private(self, args: list) -> _Cond | None:
        column = _as_column(args[0]) if len(args) == 1 else None
        if column is None:
            return _Cond(None)
        return _Cond(self.query.pred(column, "cidr", _PRIVATE_RANGES, False))

    def _fn_ipv4_is_in_range(self, args: list) -> _Cond:
        return self._two_args(args, "cidr")

    _fn_ipv4_is_match = _fn_ipv4_is_in_range

    def _fn_has_ipv4(self, args: list) -> _Cond:
        return self._two_args(args, "match")

    _fn_has_any_ipv4 = _fn_has_ipv4

    def _two_args(self, args: list, op: str) -> _Cond:
        """`f(column, literal)` as a predicate; no row when either side is not that."""
        column = _as_column(args[0]) if len(args) == 2 else None
        if column is None or not isinstance(args[1], _Lit):
            return _Cond(None)
        return _Cond(self.query.pred(column, op, args[1].values, False))

    def _fn_set_has_element(self, args: list) -> _Cond:
        column = _as_column(args[1]) if len(args) == 2 else None
        if column is None or not isinstance(args[0], _Lit):
            return _Cond(None)
        return _Cond(self.query.pred(column, "in", args[0].values, False))

    def _fn_column_ifexists(self, args: list) -> _Col | None:
        if args and isinstance(args[0], _Lit) and len(args[0].values) == 1:
            return self.env.lookup(args[0].values[0])
        return None

    _fn_columnifexists = _fn_column_ifexists

    def _fn_dynamic(self, args: list) -> object:
        if len(args) != 1:
            return None
        value = args[0]
        if isinstance(value, _Col) and not value.computed:
            return _Lit((value.field,), "list")
        return value if isinstance(value, _Lit) else None

    def _fn_pack_array(self, args: list) -> _Lit | None:
        if all(isinstance(arg, _Lit) for arg in args):
            return _Lit(tuple(v for arg in args for v in arg.values), "list")
        return None

    def _fn_materialize(self, args: list) -> object:
        return args[0] if len(args) == 1 and isinstance(args[0], _TabRef) else None

    def _fn_toscalar(self, args: list) -> _Expr:
        return _Expr("toscalar", function="toscalar")

    # -- conditions

    def compare(self, children: list) -> _Cond:
        left, op, right = children
        name, negated = operator(str(op))
        if isinstance(left, _Cond) or isinstance(right, _Cond):
            return self._compare_bool(left, name, negated, right)
        if isinstance(left, _Lit) and isinstance(right, _Col) and name in _SYMMETRIC:
            left, right = right, left
        left = _as_column(left) or left
        if not isinstance(left, _Col) or not isinstance(right, _Lit) or right.kind == "time":
            return _Cond(None)
        if left.field == "*":
            return _Cond(Pred("", "keyword", right.values, negated))
        return _Cond(self.query.pred(left, name, right.values, negated))

    def _compare_bool(self, left: object, name: str, negated: bool, right: object) -> _Cond:
        cond, other = (left, right) if isinstance(left, _Cond) else (right, left)
        if not isinstance(cond, _Cond) or not isinstance(other, _Lit) or name != "eq":
            return _Cond(None)
        truth = other.values == ("true",)
        if cond.node is None or truth != negated:
            return cond
        return _Cond(_not(cond.node))

    def search_term(self, children: list) -> _Cond:
        left, _colon, right = children
        if not isinstance(left, _Col) or not isinstance(right, _Lit):
            return _Cond(None)
        if left.field == "*":
            return _Cond(Pred("", "keyword", right.values))
        return _Cond(self.query.pred(left, "match", right.values, False))

    def list_compare(self, children: list) -> _Cond:
        left, op, args = children
        items = args if isinstance(args, list) else [self.column(args)] if args else []
        word = str(op).lower()
        negated = word.startswith("!")
        name = "match" if word.startswith("has") else "in"
        values = tuple(v for item in items if isinstance(item, _Lit) for v in item.values)
        tabs = [item for item in items if isinstance(item, _TabRef)]
        values += tuple(tab.token for tab in tabs if tab.tab.data)
        nodes = [tab.tab.tree for tab in tabs if not tab.tab.data]
        pred = None
        if isinstance(left, _Col) and values:
            pred = self.query.pred(left, name, values, negated, reference=len(tabs) > len(nodes))
        if negated:
            return _Cond(_join_optional(and_, pred, *[_not(n) for n in nodes]))
        return _Cond(_join_optional(and_, pred, *nodes))

    def between(self, children: list) -> _Cond:
        left, op, low, _range, high = children
        if not (isinstance(left, _Col) and isinstance(low, _Lit) and isinstance(high, _Lit)):
            return _Cond(None)
        if low.kind == "time" or high.kind == "time":
            return _Cond(None)
        node = _join_optional(and_, self.query.pred(left, "gte", low.values, False),
                              self.query.pred(left, "lte", high.values, False))
        if node is None or not str(op).startswith("!"):
            return _Cond(node)
        return _Cond(_not(node))

    def matches_regex(self, children: list) -> _Cond:
        left, _op, right = children
        if not isinstance(left, _Col) or not isinstance(right, _Lit):
            return _Cond(None)
        return _Cond(self.query.pred(left, "regex_match", right.values, False))

    def and_(self, children: list) -> _Cond:
        left, right = children
        return _Cond(_join_optional(and_, self.as_cond(left), self.as_cond(right)))

    def or_(self, children: list) -> _Cond:
        left, right = children
        parts = [self.as_cond(left), self.as_cond(right)]
        if any(part is None for part in parts):
            return _Cond(None) if all(p is None for p in parts) else _Cond(
                _join_optional(or_, *parts))
        return _Cond(or_(*parts))

    def as_cond(self, value: object) -> Node | None:
        """A value standing where a condition is expected, as a node (None: no row)."""
        match value:
            case _Cond():
                return value.node
            case _Col():
                return self.query.pred(value, "eq", ("true",), False)
            case _Lit(kind="bool"):
                return None
            case _Lit(kind="string") if self.search:
                return Pred("", "keyword", value.values)
            case _TabRef():
                return value.tab.tree
            case _Expr(function=function) if function:
                return Unparsed(value.text, f"unknown function {function}")
        return Unparsed(_describe(value), "not a condition")

    # -- stage bodies

    def where_body(self, children: list) -> Node:
        (value,) = children
        node = self.as_cond(value)
        return _EMPTY if node is None else node

    def assign_list(self, children: list) -> list:
        return list(children)

    def named(self, children: list) -> tuple[str, object]:
        name, value, *_type = children
        return (name, value)

    def tuple_named(self, children: list) -> tuple[str, object]:
        return (",".join(str(i) for i in children[:-1]), _Expr("tuple"))

    def unnamed(self, children: list) -> tuple[None, object]:
        value, *_type = children
        return (None, value)



def _as_column(value: object) -> _Col | None:
    """A column, or a function of one column as a computed column named by its text."""
    if isinstance(value, _Col):
        return value
    if isinstance(value, _Expr) and len(value.columns) == 1 and value.function:
        return _Col(value.text, computed=True)
    return None


_ASSIGN_CALL = re.compile(r"\s*([A-Za-z_$][\w$]*)\s*=\s*([A-Za-z_$][\w$]*)\s*\(")
_KEEP_CALLS = _WRAPPERS | {"column_ifexists", "columnifexists", *_ARG_EXTREMES}


def _computed_assign(masked: str, scope: Scope) -> tuple[str, _Expr] | None:
    """`name = f(...)...` where f computes (not a type wrapper, column lookup or function of
    the query): a computed column, whatever follows."""
    match = _ASSIGN_CALL.match(masked)
    if match is None or _SUB_OPEN in masked:
        return None
    function = match.group(2)
    if function.lower() in _KEEP_CALLS or isinstance(scope.get(function), _Function):
        return None
    return (match.group(1), _Expr(function, function=function.lower()))


def _join_optional(join, *nodes: Node | None) -> Node | None:
    present = [node for node in nodes if node is not None]
    return join(*present) if present else None


def _columns(*values: object) -> tuple[_Col, ...]:
    found: list[_Col] = []
    for value in values:
        if isinstance(value, _Col):
            found.append(value)
        elif isinstance(value, _Expr):
            found.extend(value.columns)
    return tuple(dict.fromkeys(found))


def _describe(value: object) -> str:
    match value:
        case _Expr():
            return value.text
        case _Lit():
            return " ".join(value.values)
        case _Col():
            return value.field
    return type(value).__name__


# ---- Statements and stages ------------------------------------------------------------------

_LET = re.compile(r"\s*let\s+([A-Za-z_$][\w$]*)\s*=\s*", re.DOTALL)
_FUNCTION = re.compile(r"\s*(?:view\s*)?\(([^()]*)\)\s*\{", re.DOTALL)
_PARAM = re.compile(r"([A-Za-z_$][\w$]*)\s*:")
_STAGE_WORD = re.compile(r"\s*([A-Za-z][\w-]*)")
_SUBQUERY_TOKEN = re.compile(r"\u27e6(\d+) *\u27e7")
_PARAMS = re.compile(r"\s*((?:kind|hint\.[\w.]+|withsource|isfuzzy|with_source)\s*=\s*[\w.]+\s*)")
_ASIM = re.compile(r"(?:_?(?:Im|ASim)_|im|ASim|vim)[A-Z]")
_DATA_SOURCES = ("datatable", "externaldata", "range", "print", "_getwatchlist", "evaluate")
# Operators that filter nothing and keep the columns.
_PASS_STAGES = frozenset({
    "project-away", "project-keep", "project-reorder", "sort", "order", "top", "take",
    "limit", "render", "serialize", "sample", "sample-distinct", "as", "getschema", "consume",
    "project-smart", "top-hitters", "fork", "facet",
})
_EVENT_ID_TABLES = frozenset({"SecurityEvent", "WindowsEvent"})


class _StageError(Exception):
    """A stage this module cannot read: becomes an Unparsed leaf with this reason."""


class _Query:
    """One query being read: its text, sub-queries and the problems found."""

    def __init__(self, text: str, first_line: int) -> None:
        self.text, self.first_line = text, first_line
        self.problems: list[Problem] = []
        self._subqueries: dict[str, tuple[str, int]] = {}
        self._depth = 0

    # -- problems and predicates

    def line(self, offset: int) -> int:
        return self.first_line + self.text.count("\n", 0, offset)

    def pred(self, column: _Col, op: str, values: tuple[str, ...], negated: bool,
             reference: bool = False) -> Node | None:
        """A predicate on a column; no row for a threshold on an aggregate. A one-value `in`
        is `eq`, unless the value names a reference list."""
        if not values:
            return None
        if column.aggregate and (op in ("gt", "gte", "lt", "lte") or (
                op in ("eq", "in") and all(_is_number(v) for v in values))):
            return None
        if op == "in" and len(values) == 1 and not reference:
            op = "eq"
        return Pred(column.field, op, values, negated, computed=column.computed)

    # -- statements

    def statements(self, text: str, base: int, scope: Scope) -> Tab:
        """Run the statements of a query or function body; the result is its last tabular one."""
        masked = mask(text)
        results: list[Tab] = []
        for start, end in split_top(masked, ";"):
            if not masked[start:end].strip():
                continue
            let = _LET.match(masked, start, end)
            if let:
                name = let.group(1)
                scope.names[name] = self._let(text[let.end():end], base + let.end(), scope)
            elif re.match(r"\s*(set|declare|alias|restrict|pattern)\b", masked[start:end]):
                continue
            else:
                results.append(self.pipeline(text[start:end], base + start, scope))
        if not results:
            return Tab()
        return results[0] if len(results) == 1 else _union(results)

    def _let(self, body: str, base: int, scope: Scope) -> object:
        masked = mask(body)
        function = _FUNCTION.match(masked)
        if function and masked.rstrip().endswith("}"):
            params = tuple(_PARAM.findall(function.group(1)))
            close = masked.rstrip().rfind("}")
            return _Function(params, body[function.end():close], base + function.end())
        if self._is_tabular(masked, scope):
            return self.pipeline(body, base, scope)
        return self._scalar(body, base, scope)

    def _is_tabular(self, masked: str, scope: Scope) -> bool:
        stripped = masked.strip()
        if stripped.startswith("(") and _closing(stripped, 0) == len(stripped) - 1:
            return self._is_tabular(stripped[1:-1], scope)
        if any(start < end for start, end in split_top(stripped, "|")[1:]):
            return True
        word = _STAGE_WORD.match(stripped)
        if not word:
            return False
        head = word.group(1)
        if head.lower() in ("union", "search", "find", "materialize", "table", "view") or \
                head.lower() in _DATA_SOURCES:
            return True
        bound = scope.get(head)
        if bound is not None:
            return isinstance(bound, (Tab, _Function))
        return word.end() == len(stripped) and not _is_scalar_name(head)

    def _scalar(self, body: str, base: int, scope: Scope) -> object:
        try:
            value = self._parse_expr_value(body, base, scope)
        except _StageError:
            return _Expr(body.strip())
        if isinstance(value, _TabRef):
            return value.tab
        return value

    def _parse_expr_value(self, body: str, base: int, scope: Scope) -> object:
        text = self._with_subqueries(body, base)
        tree = self._parse(text, "where_body", "let")
        transformer = _ExprTransformer(self, Env(), scope, text)
        return _transform(transformer, tree.children[0])

    # -- pipelines

    def pipeline(self, text: str, base: int, scope: Scope) -> Tab:
        """A tabular expression: a source and its stages, each stage read on its own."""
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                return Tab(Unparsed(text.strip()[:200], "query nested too deeply"))
            replaced = self._with_subqueries(text, base)
            spans = split_top(mask(replaced), "|")
            tab = self._stage_or_unparsed(self._source, replaced, spans[0], base, scope, None)
            for span in spans[1:]:
                tab = self._stage_or_unparsed(self._stage, replaced, span, base, scope, tab)
            return tab
        finally:
            self._depth -= 1

    def _stages(self, text: str, base: int, scope: Scope, tab: Tab) -> Tab:
        """Stages with no source of their own (an mv-apply sub-query) applied to a table."""
        replaced = self._with_subqueries(text, base)
        for span in split_top(mask(replaced), "|"):
            if replaced[span[0]:span[1]].strip():
                tab = self._stage_or_unparsed(self._stage, replaced, span, base, scope, tab)
        return tab

    def _stage_or_unparsed(self, reader, text: str, span: tuple[int, int], base: int,
                           scope: Scope, tab: Tab | None) -> Tab:
        body = text[span[0]:span[1]]
        try:
            return reader(body, base + span[0], scope, tab)
        except _StageError as error:
            leaf = Unparsed(_restore(body, self).strip(),
                            f"{error} (line {self.line(base + span[0] + _lead(body))})")
            if tab is None:
                return Tab(leaf)
            return Tab(and_(tab.tree, leaf), tab.env, tab.events, tab.tables, tab.data)

    def _with_subqueries(self, text: str, base: int) -> str:
        """The text with each parenthesised sub-query replaced by a same-length token; the
        parentheses stay."""
        pieces, last = [], 0
        for start, end in _piped_groups(mask(text)):
            key = str(len(self._subqueries))
            self._subqueries[key] = (text[start + 1:end], base + start + 1)
            token = f"{_SUB_OPEN}{key}".ljust(end - start - 2, " ") + _SUB_CLOSE
            pieces.extend([text[last:start + 1], token])
            last = end
        pieces.append(text[last:])
        return "".join(pieces)

    def subquery(self, token: str, scope: Scope) -> Tab:
        match = _SUBQUERY_TOKEN.fullmatch(token.strip())
        if not match or match.group(1) not in self._subqueries:
            raise _StageError("sub-query not found")
        text, base = self._subqueries[match.group(1)]
        return self.statements(text, base, Scope(parent=scope))

    def call_function(self, name: str, function: _Function, args: list, scope: Scope) -> Tab:
        inner = Scope(parent=scope)
        for param, arg in zip(function.params, args, strict=False):
            inner.names[param] = arg.tab if isinstance(arg, _TabRef) else arg
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                return Tab(Unparsed(name, "function calls nested too deeply"))
            return self.statements(function.body, function.base, inner)
        finally:
            self._depth -= 1

    # -- sources

    def _source(self, body: str, base: int, scope: Scope, _tab: Tab | None) -> Tab:
        masked = mask(body)
        word = _STAGE_WORD.match(masked)
        head = word.group(1).lower() if word else ""
        if head == "union":
            return _union(self._union_items(body[word.end():], base + word.end(), scope))
        if head == "search":
            return self._stage(body, base, scope, Tab())
        if head in ("find", "evaluate"):
            # TODO(#6): read `find` (4 hunting queries); its `where` spans many tables at once
            raise _StageError(f"unsupported source {head}")
        return self._source_item(body, base, scope)

    def _union_items(self, body: str, base: int, scope: Scope) -> list[Tab]:
        masked = mask(body)
        offset = _skip_params(masked)
        items = []
        for start, end in split_top(masked, ","):
            start = max(start, offset)
            if masked[start:end].strip():
                items.append(self._source_item(body[start:end], base + start, scope))
        return items

    def _source_item(self, body: str, base: int, scope: Scope) -> Tab:
        stripped = uncomment(body).strip()
        masked = mask(stripped)
        if re.match(r"(union|search)\b", masked):
            return self._source(stripped, base, scope, None)
        sub = _SUBQUERY_TOKEN.fullmatch(stripped)
        if sub:
            return self.subquery(stripped, scope)
        if stripped.startswith("(") and _closing(masked, 0) == len(masked) - 1:
            return self._source_item(stripped[1:-1], base, scope)
        call = re.fullmatch(r"([A-Za-z_$][\w$]*)\s*\((.*)\)", masked, re.DOTALL)
        if call:
            return self._source_call(call.group(1), stripped, call.start(2), call.end(2),
                                     scope)
        data = re.match(r"(datatable|externaldata)\s*\(", masked, re.IGNORECASE)
        if data:
            return Tab(data=stripped.split("(")[0].strip())
        name = re.fullmatch(r"[A-Za-z_$][\w$]*\*?|\[\s*['\"].*['\"]\s*\]", masked)
        if not name:
            raise _StageError("unreadable source")
        return self._named_source(_bare_name(stripped), scope)

    def _named_source(self, name: str, scope: Scope) -> Tab:
        bound = scope.get(name)
        if isinstance(bound, Tab):
            return bound if bound.data else Tab(bound.tree, bound.env.copy(), bound.events,
                                                bound.tables, "")
        if isinstance(bound, _Function):
            return self.call_function(name, bound, [], scope)
        if isinstance(bound, _Lit) and len(bound.values) == 1:
            return self._named_source(bound.values[0], scope)
        if bound is not None:
            raise _StageError(f"scalar {name} used as a table")
        return _table(name)

    def _source_call(self, name: str, text: str, start: int, end: int, scope: Scope) -> Tab:
        function = name.lower()
        inner = text[start:end]
        bound = scope.get(name)
        if isinstance(bound, _Function):
            args = self._call_args(inner, scope)
            return self.call_function(name, bound, args, scope)
        if function in ("materialize", "view"):
            return self._source_item(inner, 0, scope)
        if function == "table":
            values = self._call_args(inner, scope)
            if values and isinstance(values[0], _Lit) and values[0].values:
                return self._named_source(values[0].values[0], scope)
            raise _StageError("table() of an unknown name")
        if function in _DATA_SOURCES or re.match(r"(datatable|externaldata)\b", function):
            return Tab(data=f"{name}({' '.join(inner.split())})")
        if _ASIM.match(name):
            return Tab(self._asim_filters(inner, scope), events=(f"sentinel:asim/{name}",))
        return Tab(events=(f"sentinel:function/{name}",))

    def _asim_filters(self, inner: str, scope: Scope) -> Node:
        """An ASIM parser's filtering parameters (`imDns(domain_has_any=list)`), named as the
        rule names them, less the operator suffix; time windows give no row.
        https://learn.microsoft.com/azure/sentinel/normalization-about-parsers"""
        if not inner.strip():
            return _EMPTY
        nodes = []
        for name, value in self._assignments(inner, scope, Env())[0]:
            if name is None or not isinstance(value, _Lit) or value.kind == "time":
                continue
            field, op = _asim_parameter(name)
            nodes.append(self.pred(_Col(field), op, value.values, False))
        return _join_optional(and_, *nodes) or _EMPTY

    def _call_args(self, inner: str, scope: Scope) -> list:
        if not inner.strip():
            return []
        assigns, _used = self._assignments(inner, scope, Env())
        return [value for _name, value in assigns]

    # -- stages

    def _stage(self, body: str, base: int, scope: Scope, tab: Tab | None) -> Tab:
        assert tab is not None
        masked = mask(body)
        word = _STAGE_WORD.match(masked)
        if not word:
            raise _StageError("empty stage")
        name = word.group(1).lower()
        rest, rest_base = body[word.end():], base + word.end()
        if name in _PASS_STAGES:
            return tab
        reader = getattr(self, "_op_" + name.replace("-", "_"), None)
        if reader is None:
            raise _StageError(f"unknown operator {name}")
        return reader(rest, rest_base, scope, tab)

    def _parse(self, text: str, start: str, what: str):
        try:
            return _parse_tree(text, start)
        except UnexpectedInput as error:
            raise _StageError(f"syntax error in {what}: {_expected(error, text)}") from None
        except LarkError as error:
            raise _StageError(f"syntax error in {what}") from error

    def _op_where(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        node, used = self._where_node(rest, base, scope, tab.env, search=False)
        return self._filtered(tab, node, used)

    _op_filter = _op_where

    def _op_search(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        masked = mask(rest)
        offset = _skip_params(masked)
        tables: list[Tab] = []
        scoped = re.match(r"\s*in\s*\(([^()]*)\)", masked[offset:])
        if scoped:
            names = rest[offset + scoped.start(1):offset + scoped.end(1)].split(",")
            tables = [self._named_source(_bare_name(n), scope) for n in names if n.strip()]
            offset += scoped.end()
        node, used = self._where_node(rest[offset:], base + offset, scope, tab.env, True)
        source = _union(tables) if tables else tab
        return self._filtered(source, node, used)

    def _where_node(self, rest: str, base: int, scope: Scope, env: Env,
                    search: bool) -> tuple[Node, list[Tab]]:
        try:
            return self._parse_where(rest, scope, env, search)
        except _StageError:
            parts = _split_and(rest)
            if len(parts) < 2:
                raise
            return self._where_by_parts(rest, parts, base, scope, env, search)

    def _parse_where(self, rest: str, scope: Scope, env: Env,
                     search: bool) -> tuple[Node, list[Tab]]:
        tree = self._parse(rest, "where_body", "search" if search else "where")
        transformer = _ExprTransformer(self, env, scope, rest, search)
        return _transform(transformer, tree), transformer.used

    def _where_by_parts(self, rest: str, parts: list[tuple[int, int]], base: int, scope: Scope,
                        env: Env, search: bool) -> tuple[Node, list[Tab]]:
        """A where clause that does not parse whole: each top-level `and` term on its own."""
        nodes, used = [], []
        for start, end in parts:
            part = rest[start:end]
            try:
                node, part_used = self._parse_where(part, scope, env, search)
            except _StageError as error:
                line = self.line(base + start + _lead(part))
                node = Unparsed(_restore(part, self).strip(), f"{error} (line {line})")
                part_used = []
            nodes.append(node)
            used.extend(part_used)
        return and_(*nodes), used

    def _filtered(self, tab: Tab, node: Node, used: list[Tab]) -> Tab:
        events = _unique(tab.events, *(t.events for t in used), _event_ids(tab.tables, node))
        return Tab(and_(tab.tree, node), tab.env, events, tab.tables, tab.data)

    def _assignments(self, rest: str, scope: Scope, env: Env) -> tuple[list, list[Tab]]:
        """(name or None, value) of each comma-separated column of an extend, project,
        summarize or mv-expand; a value that starts with a computing function is known to be
        computed without parsing it (the long `iff`, `case` and `extract` calls)."""
        masked = mask(rest)
        assigns: list = []
        used: list[Tab] = []
        for start, end in split_top(masked, ","):
            if not masked[start:end].strip():
                continue
            quick = _computed_assign(masked[start:end], scope)
            if quick is not None:
                assigns.append(quick)
                continue
            transformer = _ExprTransformer(self, env, scope, rest[start:end])
            tree = self._parse(rest[start:end], "assign_list", "assign")
            assigns.extend(_transform(transformer, tree))
            used.extend(transformer.used)
        return assigns, used

    def _op_extend(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        assigns, used = self._assignments(rest, scope, tab.env)
        env = tab.env.copy()
        for name, value in assigns:
            if name is not None:
                env.columns[name] = _assigned(name, value)
        return _with_env(tab, env, used)

    def _op_project(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        return self._op_extend(rest, base, scope, tab)

    def _op_project_rename(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        # an extend in all but name: some rules rename to an expression, which Kusto refuses
        return self._op_extend(rest, base, scope, tab)

    def _op_summarize(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        rest = _PARAMS.sub(lambda m: " " * len(m.group(0)), rest)
        top = _top(mask(rest))
        by = re.search(r"(?<![\w$])by(?![\w$])", top)
        aggregates, used = self._assignments(rest[:by.start()] if by else rest, scope, tab.env)
        groups, group_used = self._assignments(rest[by.end():], scope, tab.env) if by else ([], [])
        used += group_used
        env = Env({}, closed=True)
        for name, value in aggregates:
            if isinstance(value, _Expr) and value.function in _ARG_EXTREMES:
                env = _carry(env, tab.env, value)
            if name is not None:
                env.columns[name] = _Col(name, computed=True, aggregate=True)
        for name, value in groups:
            _group_column(env, name, value)
        return _with_env(tab, env, used)

    def _op_make_series(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        masked = mask(rest)
        top = _top(masked)
        on = re.search(r"(?<![\w$])on(?![\w$])", top)
        by = re.search(r"(?<![\w$])by(?![\w$])", top[on.end():] if on else "")
        if not on:
            raise _StageError("make-series without an axis")
        aggregates = re.sub(r"(?<![\w$])default\s*=\s*[^\s,]+", "", rest[:on.start()])
        groups = f"by {rest[on.end() + by.end():]}" if by else ""
        return self._op_summarize(f"{aggregates} {groups}", base, scope, tab)

    def _op_distinct(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        if rest.strip() == "*":
            return tab
        assigns, used = self._assignments(rest, scope, tab.env)
        env = Env({}, closed=True)
        for name, value in assigns:
            _group_column(env, name, value)
        return _with_env(tab, env, used)

    def _op_count(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        return _with_env(tab, Env({}, closed=True), [])

    def _op_mv_expand(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        rest = re.sub(r"\b(bagexpansion|with_itemindex|kind)\s*=\s*\w+", "", rest)
        rest = re.sub(r"\blimit\s+\d+\s*$", "", rest)
        assigns, used = self._assignments(rest, scope, tab.env)
        env = tab.env.copy()
        for name, value in assigns:
            if name is not None:
                env.columns[name] = _assigned(name, value)
        return _with_env(tab, env, used)

    _op_mvexpand = _op_mv_expand

    def _op_parse(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        masked = mask(rest)
        pattern = re.search(r"\bwith\b(.*)$", masked, re.DOTALL)
        if not pattern:
            raise _StageError("parse without a pattern")
        env = tab.env.copy()
        for name in re.findall(r"(?<![\w.$])([A-Za-z_]\w*)(?:\s*:\s*[a-z]+)?", pattern.group(1)):
            env.columns[name] = _Col(name, computed=True)
        return _with_env(tab, env, [])

    _op_parse_kv = _op_parse

    def _op_evaluate(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        plugin = re.match(r"\s*(?:hint\.\w+\s*=\s*\w+\s*)*([\w-]+)", mask(rest))
        name = plugin.group(1).lower() if plugin else ""
        if name in ("bag_unpack", "pivot"):
            # the new columns are the event's own fields (Sysmon's EventData unpacked)
            return _with_env(tab, tab.env.copy(closed=False), [])
        if name in ("ipv4_lookup", "ipv6_lookup", "geo_info_from_ip_address"):
            return tab
        return _with_env(tab, Env({}, closed=True), [])

    def _op_mv_apply(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        masked = mask(rest)
        on = re.search(r"(?<![\w$])on\s*\(", _top(masked))
        close = _closing(masked, on.end() - 1) if on else -1
        if close < 0:
            raise _StageError("mv-apply without a sub-query")
        head = re.sub(r"\b(with_itemindex|limit)\s*=?\s*\w+", "", rest[:on.start()])
        expanded = self._op_mv_expand(head, base, scope, tab)
        inner, inner_base = rest[on.end():close], base + on.end()
        token = _SUBQUERY_TOKEN.fullmatch(inner.strip())
        if token:
            inner, inner_base = self._subqueries[token.group(1)]
        applied = self._stages(inner, inner_base, scope, Tab(env=expanded.env))
        return Tab(and_(tab.tree, applied.tree), tab.env, _unique(tab.events, applied.events),
                   tab.tables, tab.data)

    def _op_join(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        kind, right = self._joined(rest, scope, "innerunique")
        return _join(tab, right, kind)

    def _op_lookup(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        kind, right = self._joined(rest, scope, "leftouter")
        return _join(tab, right, kind)

    def _joined(self, rest: str, scope: Scope, default: str) -> tuple[str, Tab]:
        masked = mask(rest)
        offset, kind = 0, default
        while match := _PARAMS.match(masked, offset):
            key, _, value = match.group(1).partition("=")
            if key.strip() == "kind":
                kind = value.strip().lower()
            offset = match.end()
        on = re.search(r"\bon\b", masked[offset:])
        source = rest[offset:offset + on.start()] if on else rest[offset:]
        if not source.strip():
            raise _StageError("join without a right side")
        return kind, self._source_item(source, 0, scope)

    def _op_union(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        return _union([tab, *self._union_items(rest, base, scope)])

    def _op_top_nested(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        """Aggregates: only the `of` columns keep their source."""
        env = Env({}, closed=True)
        for name in re.findall(r"(?<![\w$])of\s+([A-Za-z_$][\w$]*)", mask(rest)):
            env.columns[name] = tab.env.lookup(name)
        return _with_env(tab, env, [])

    def _op_partition(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        """`partition by Col (stages)`: the stages run on each part, so they filter the table."""
        masked = mask(rest)
        start = max(masked.rfind("("), masked.rfind("{"))
        close = _closing(masked, start) if start >= 0 else -1
        if close < 0:
            raise _StageError("partition without a sub-query")
        inner, inner_base = rest[start + 1:close], base + start + 1
        token = _SUBQUERY_TOKEN.fullmatch(inner.strip())
        if token:
            inner, inner_base = self._subqueries[token.group(1)]
        return self._stages(inner, inner_base, scope, tab)

    def _op_invoke(self, rest: str, base: int, scope: Scope, tab: Tab) -> Tab:
        # TODO(#6): run the invoked let function's body on the table (6 hunting queries do it)
        raise _StageError("unsupported operator invoke")


@lru_cache(maxsize=8192)
def _parse_tree(text: str, start: str):
    """A stage body's parse tree; stages repeat across rules (`where TimeGenerated > ago(1d)`)
    and function bodies, so trees are kept (the transformer never changes them)."""
    return _PARSER.parse(text, start=start)


def _transform(transformer: _ExprTransformer, tree):
    try:
        return transformer.transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, _StageError):
            raise error.orig_exc from None
        raise error.orig_exc from error


def _expected(error: UnexpectedInput, text: str) -> str:
    token = getattr(error, "token", None)
    if token is not None and str(token):
        return f"unexpected {str(token)[:30]!r}"
    char = text[error.pos_in_stream:error.pos_in_stream + 1] if error.pos_in_stream is not None \
        else ""
    return f"unexpected {char!r}" if char else "unexpected end"


def _skip_params(masked: str) -> int:
    """Offset past leading `kind=...`, `hint.x=...`, `isfuzzy=...` parameters."""
    offset = 0
    while match := _PARAMS.match(masked, offset):
        offset = match.end()
    return offset


def _closing(masked: str, start: int) -> int:
    """Index of the bracket closing the one at `start` (-1 when unclosed)."""
    depth = 0
    for index in range(start, len(masked)):
        if masked[index] in _OPEN:
            depth += 1
        elif masked[index] in _CLOSE:
            depth -= 1
            if depth == 0:
                return index
    return -1


def _lead(text: str) -> int:
    return len(text) - len(text.lstrip())


def _restore(text: str, query: _Query) -> str:
    """Stage text with sub-query tokens put back as written."""
    def back(match: re.Match[str]) -> str:
        inner = query._subqueries.get(match.group(1))
        return f"({inner[0]})" if inner else match.group(0)
    return _SUBQUERY_TOKEN.sub(back, text)


def _split_and(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in re.finditer(r"(?<![\w$])and(?![\w$])", _top(mask(text))):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [span for span in spans if text[span[0]:span[1]].strip()]


def _top(masked: str) -> str:
    """The masked text with everything inside brackets hidden; the brackets stay."""
    chars, depth = [], 0
    for char in masked:
        if char in _CLOSE:
            depth = max(depth - 1, 0)
        chars.append(char if depth == 0 else "#")
        if char in _OPEN:
            depth += 1
    return "".join(chars)


def _is_number(value: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", value) is not None


def _is_scalar_name(name: str) -> bool:
    return name.lower() in ("true", "false", "null") or name[:1].isdigit()


def _bare_name(text: str) -> str:
    text = text.strip()
    if text.startswith("["):
        return unquote(text[1:-1].strip())
    return text


_ASIM_SUFFIXES = (("_has_any_prefix", "starts_with"), ("_has_any", "match"),
                  ("_has_all", "match"), ("_in", "in"))


def _asim_parameter(name: str) -> tuple[str, str]:
    for suffix, op in _ASIM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix), op
    return name, "eq"


def _table(name: str) -> Tab:
    kind = "asim" if _ASIM.match(name) else "table"
    return Tab(events=(f"sentinel:{kind}/{name}",), tables=(name,))


def _union(tabs: list[Tab]) -> Tab:
    """Rows of any branch: an OR of the branch conditions (an unfiltered branch stays in it, so
    the others' filters do not count as required)."""
    if len(tabs) == 1:
        return tabs[0]
    env = Env({}, closed=all(t.env.closed for t in tabs))
    for tab in reversed(tabs):
        env.columns.update(tab.env.columns)
    trees = list(dict.fromkeys(t.tree for t in tabs))
    tree = _EMPTY if trees == [_EMPTY] else or_(*trees)
    return Tab(tree, env, _unique(*(t.events for t in tabs)), _unique(*(t.tables for t in tabs)))


def _join(left: Tab, right: Tab, kind: str) -> Tab:
    events = _unique(left.events, right.events)
    right_tree = right.tree if not right.data else _EMPTY
    if kind == "leftanti" or kind == "anti":
        return Tab(and_(left.tree, _not(right_tree)), left.env, events, left.tables)
    if kind == "rightanti":
        return Tab(and_(right_tree, _not(left.tree)), right.env, events, right.tables)
    if kind in ("leftsemi", "semi"):
        return Tab(and_(left.tree, right_tree), left.env, events, left.tables)
    env = right.env.copy(closed=left.env.closed and right.env.closed)
    env.columns.update(left.env.columns)
    if kind in ("rightsemi", "rightouter"):
        env = right.env.copy()
    return Tab(and_(left.tree, right_tree), env, events, left.tables)


def _with_env(tab: Tab, env: Env, used: list[Tab]) -> Tab:
    return Tab(tab.tree, env, _unique(tab.events, *(t.events for t in used)), tab.tables,
               tab.data)


def _assigned(name: str, value: object) -> _Col:
    if isinstance(value, _Col) and value.field != "*":
        return value
    return _Col(name, computed=True)


def _group_column(env: Env, name: str | None, value: object) -> None:
    if name is not None:
        env.columns[name] = _assigned(name, value)
    elif isinstance(value, _Col):
        env.columns[value.field.rsplit(".", 1)[-1]] = value
    elif isinstance(value, _Expr) and len(value.columns) == 1:
        column = value.columns[0]
        env.columns[column.field.rsplit(".", 1)[-1]] = column


def _carry(env: Env, previous: Env, value: _Expr) -> Env:
    if any(c.field == "*" for c in value.columns):
        carried = previous.copy()
        carried.columns.update(env.columns)
        return carried
    for column in value.columns[1:]:
        env.columns[column.field] = column
    return env


def _event_ids(tables: tuple[str, ...], node: Node) -> tuple[str, ...]:
    wanted = [t for t in tables if t in _EVENT_ID_TABLES]
    if not wanted:
        return ()
    ids = [row.value for row in flatten(node) if row.field == "EventID" and not row.negated
           and row.op in ("eq", "in") and not row.computed]
    return tuple(f"sentinel:table/{t}/{i}" for t in wanted for i in ids)


def parse_kusto(query: str, first_line: int = 1) -> KustoResult:
    """The condition tree, event types and problems of one KQL query."""
    reader = _Query(query, first_line)
    tab = reader.statements(query, 0, Scope())
    computed = dict.fromkeys(row.field for row in flatten(tab.tree) if row.computed)
    problems = [Problem("computed_field", f"filter on computed column {name!r}, not a source "
                        "field") for name in computed]
    return KustoResult(tab.tree, tab.events, reader.problems + problems)
