"""SPL searches to condition trees: the pipeline, its filtering stages and their expressions.

A search (macros already expanded, see `splunk_macros`) is split on its top-level pipes. Stages
that filter become subtrees ANDed together: the initial search and `| search` (search terms),
`| where` (eval expressions), `| regex`, the WHERE of `| tstats`/`| mstats`/`| inputlookup`,
and inner joins on subsearches. Stages that do not filter (`stats`, `eval`, `rename`, `lookup`,
`table`, ...) are read only for what they do to field names (`splunk_fields`), so that a later
filter names the source field, or is marked computed. A stage this module does not know is an
`Unparsed` leaf, never skipped.

Search reference: https://docs.splunk.com/Documentation/Splunk/latest/SearchReference
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedInput, VisitError

from kb.model import And, Node, Not, Or, Pred, Unparsed, and_, or_
from loaders.splunk_fields import AGGREGATE, COMPUTED, KEEP, Binding, Env, Scope
from loaders.splunk_macros import MISSING, split_top

logger = logging.getLogger(__name__)

_PARSER = Lark(
    (Path(__file__).with_name("spl.lark")).read_text(encoding="utf-8"),
    parser="lalr",
    start=["search_expr", "eval_expr"],
    propagate_positions=True,
    maybe_placeholders=False,
)

TRUE: Node = And(())  # matches everything: a stage or term that filters nothing

_MAX_SUBSEARCH_DEPTH = 4
_THRESHOLD_OPS = frozenset({"gt", "gte", "lt", "lte"})
_CMP_OPS = {"=": "eq", "==": "eq", "!=": "eq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "==": "==", "!=": "!="}
# Time modifiers pick the search window: no row (DESIGN.md).
_TIME_MODIFIERS = frozenset({
    "earliest", "latest", "starttime", "endtime", "starthoursago", "endhoursago",
    "startdaysago", "enddaysago", "startminutesago", "endminutesago", "index_earliest",
    "index_latest", "earliest_time", "latest_time", "timeformat", "span",
})
# Type and case wrappers are syntax decoration around a field (DESIGN.md).
_WRAPPERS = frozenset({"lower", "upper", "tostring", "tonumber"})
# Aggregations whose column carries the field's own values: a filter on it tests that field.
_VALUE_AGGREGATES = frozenset({
    "values", "list", "latest", "earliest", "first", "last", "mode",
})
_WORD_CHUNKS = re.compile(
    r'"(?:[^"\\]|\\.)*"?|`[^`]*`?|\\.?|[()\[\]]|[\s,]+|[^"`\\()\[\]\s,]+', re.DOTALL)
# A comparison with the clock is a time window; a count of values is an aggregate.
_TIME_FUNCTIONS = frozenset({"now", "relative_time", "time", "strptime"})
_COUNT_FUNCTIONS = frozenset({"mvcount"})
_GENERATING = frozenset({
    "search", "tstats", "mstats", "inputlookup", "datamodel", "from", "summary", "makeresults",
    "rest",
})
_ESCAPE = re.compile(r'\\([\\"])')
_MATCH_ALL = re.compile(r"\s*(?:search\s+)?\*?\s*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


@dataclass
class SplResult:
    """What a search filters on, and the data it selects (data models, lookups)."""

    condition: Node
    event_types: list[str] = field(default_factory=list)


def parse_spl(text: str, unresolved: Mapping[str, str] | None = None,
              lookups: Mapping[str, tuple[str, ...]] | None = None) -> SplResult:
    """Parse an expanded search into a condition tree and the event types it selects."""
    reader = _Reader(dict(unresolved or {}), dict(lookups or {}))
    state = reader.pipeline(text, depth=0)
    return SplResult(state.tree(), _unique(state.event_types + reader.event_types))


def split_pipeline(text: str) -> list[str]:
    """The stages of a search: split on `|` outside quotes, backticks and brackets."""
    return split_top(text, "|")


# ---------------------------------------------------------------------------------------------
# Values: unquoting, wildcards


def unquote(token: str) -> str:
    """A search or eval token as its value: quotes removed, `\\\\` and `\\"` unescaped."""
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        token = token[1:-1]
    return _ESCAPE.sub(r"\1", token) if "\\" in token else token


def fold_wildcards(value: str) -> tuple[str, str]:
    """`*x*`, `x*`, `*x` as contains/starts_with/ends_with; other `*` patterns as wildcard."""
    if value.strip("*") == "":
        return ("is_not_null", "") if value else ("eq", "")
    starts, ends = value.startswith("*"), value.endswith("*")
    core = value[1 if starts else 0: len(value) - 1 if ends else len(value)]
    if "*" in core:
        return "wildcard", value
    if starts and ends:
        return "contains", core
    if starts:
        return "ends_with", core
    if ends:
        return "starts_with", core
    return "eq", value


def fold_like(pattern: str) -> tuple[str, str]:
    """An eval `like` pattern (`%` any run of characters) as an operator and value."""
    # TODO(#5): `_` (any one character) is read literally: rules use it in names far more often
    # than as a wildcard, and the literal reading loses only precision.
    return fold_wildcards(pattern.replace("%", "*"))


def _is_number(value: str) -> bool:
    return bool(_NUMBER.fullmatch(value.strip()))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------------------------
# Expression transformers


class _Terms:
    """What both transformers share: the field environment and predicate building."""

    def __init__(self, reader: _Reader, env: Env, text: str, depth: int) -> None:
        self.reader = reader
        self.env = env
        self.text = text
        self.depth = depth
        self.nodenames: list[str] = []

    def pred(self, name: str, op: str, values: tuple[str, ...], negated: bool = False) -> Node:
        """A predicate on a field as the pipeline resolves it; thresholds on aggregates vanish."""
        resolved = self.env.resolve(name)
        if not resolved.known and "(" in resolved.field:
            # An unknown column named like `IsOutlier(x)` is some command's output.
            return Pred(name, op, values, negated, computed=True)
        if resolved.kind == AGGREGATE:
            if op in _THRESHOLD_OPS or all(_is_number(value) for value in values):
                return TRUE
            return Pred(name, op, values, negated, computed=True)
        return Pred(resolved.field, op, values, negated, computed=resolved.kind == COMPUTED)

    def macro(self, token: str) -> Node:
        return Unparsed(token, self.reader.unresolved.get(token, MISSING))

    def span(self, meta: object) -> str:
        start, end = getattr(meta, "start_pos", None), getattr(meta, "end_pos", None)
        return self.text[start:end] if start is not None else self.text


def _negate(node: Node) -> Node:
    return TRUE if node == TRUE else Not(node)


@v_args(inline=True)
class _SearchTransformer(Transformer, _Terms):
    """Search terms to model nodes (search command semantics: `*` wildcards, keywords)."""

    def __init__(self, reader: _Reader, env: Env, text: str, depth: int) -> None:
        Transformer.__init__(self)
        _Terms.__init__(self, reader, env, text, depth)

    def search_expr(self, *children: Node) -> Node:
        return and_(*children) if children else TRUE

    def s_and(self, *children: Node) -> Node:
        return and_(*children)

    def s_or(self, *children: Node) -> Node:
        return or_(*children)

    def s_neg(self, child: Node) -> Node:
        return _negate(child)

    def s_field(self, token: Token) -> str:
        return unquote(str(token))

    def s_value(self, token: Token) -> tuple[str, bool]:
        text = str(token)
        if token.type == "TERM_FN":
            return unquote(text[text.index("(") + 1: -1].strip()), True
        return unquote(text), False

    s_operand = s_value

    def s_compare(self, name: str, cmp: Token, value: tuple[str, bool]) -> Node:
        text, _ = value
        if name.lower() in _TIME_MODIFIERS:
            return TRUE
        if name == "nodename":
            self.nodenames.append(text)
            return TRUE
        op = _CMP_OPS[str(cmp)]
        if op == "eq":
            op, text = fold_wildcards(text)
        return self.pred(name, op, (text,), negated=str(cmp) == "!=")

    def s_in(self, name: str, *values: tuple[str, bool]) -> Node:
        return _in_list(self, name, [fold_wildcards(text) for text, _ in values])

    def s_keyword(self, value: tuple[str, bool]) -> Node:
        text, is_term = value
        if text.strip("*") == "" and not is_term:
            return TRUE
        return Pred("", "keyword", (text,))

    def s_subsearch(self, token: Token) -> Node:
        return self.reader.subsearch_filter(self, str(token))

    def s_macro(self, token: Token) -> Node:
        return self.macro(str(token))


def _in_list(terms: _Terms, name: str, folded: list[tuple[str, str]]) -> Node:
    """A field IN list: plain values make one `in` (or `eq`) predicate, patterns their own."""
    plain = tuple(value for op, value in folded if op == "eq")
    nodes: list[Node] = []
    if plain:
        nodes.append(terms.pred(name, "in" if len(plain) > 1 else "eq", plain))
    nodes.extend(terms.pred(name, op, (value,)) for op, value in folded if op != "eq")
    return or_(*nodes) if nodes else TRUE


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Lit:
    value: str
    number: bool = False


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[object, ...]
    text: str


@dataclass(frozen=True)
class _Expr:
    fields: tuple[str, ...]
    text: str
    calls: tuple[object, ...] = ()


@v_args(meta=True)
class _EvalTransformer(Transformer, _Terms):
    """Eval expressions (`| where`) to model nodes; values are helper objects until compared."""

    def __init__(self, reader: _Reader, env: Env, text: str, depth: int) -> None:
        Transformer.__init__(self)
        _Terms.__init__(self, reader, env, text, depth)

    def eval_expr(self, meta: object, children: list) -> Node:
        return self.as_node(children[0], self.span(meta))

    def e_or_op(self, meta: object, children: list) -> Node:
        return or_(self.as_node(children[0], ""), self.as_node(children[1], ""))

    def e_and_op(self, meta: object, children: list) -> Node:
        return and_(self.as_node(children[0], ""), self.as_node(children[1], ""))

    def e_xor_op(self, meta: object, children: list) -> Node:
        return Unparsed(self.span(meta), "xor")

    def e_neg(self, meta: object, children: list) -> Node:
        return _negate(self.as_node(children[-1], self.span(meta)))

    def e_compare(self, meta: object, children: list) -> Node:
        left, cmp, right = children
        return self.compare(left, str(cmp), right, self.span(meta))

    def e_like(self, meta: object, children: list) -> Node:
        negated = len(children) == 3
        node = self.like(children[0], children[-1], self.span(meta))
        return _negate(node) if negated else node

    def e_in(self, meta: object, children: list) -> Node:
        negated = len(children) == 3
        node = self.in_values(children[0], children[-1], self.span(meta))
        return _negate(node) if negated else node

    def e_arith(self, meta: object, children: list) -> _Expr:
        return _Expr(_fields_of(children), self.span(meta), _calls_of(children))

    def e_signed(self, meta: object, children: list) -> object:
        sign, value = children
        if isinstance(value, _Lit) and value.number:
            return _Lit(f"{sign}{value.value}".lstrip("+"), number=True)
        return _Expr(_fields_of([value]), self.span(meta), _calls_of([value]))

    def e_string(self, meta: object, children: list) -> _Lit:
        return _Lit(unquote(str(children[0])))

    def e_number(self, meta: object, children: list) -> _Lit:
        return _Lit(str(children[0]), number=True)

    def e_field(self, meta: object, children: list) -> _Field:
        return _Field(unquote(str(children[0])))

    def e_call(self, meta: object, children: list) -> _Call:
        args = tuple(children[1]) if len(children) > 1 else ()
        return _Call(str(children[0]).lower(), args, self.span(meta))

    def e_args(self, meta: object, children: list) -> list:
        return children

    def e_macro(self, meta: object, children: list) -> Node:
        return self.macro(str(children[0]))

    # -- turning values into conditions

    def as_node(self, value: object, text: str) -> Node:
        if isinstance(value, And | Or | Pred | Not | Unparsed):
            return value
        if isinstance(value, _Call):
            return self.call(value)
        return Unparsed(text or _text_of(value), "expression")

    def call(self, call: _Call) -> Node:
        handler = _BOOLEAN_FUNCTIONS.get(call.name)
        if handler is None:
            return Unparsed(call.text, f"function {call.name}")
        return handler(self, call)

    def compare(self, left: object, cmp: str, right: object, text: str) -> Node:
        left, right = _unwrap(left), _unwrap(right)
        if isinstance(left, _Lit) and isinstance(right, _Field):
            left, right, cmp = right, left, _FLIPPED[cmp]
        if isinstance(left, _Field) and isinstance(right, _Call) and right.name == "null":
            return self.pred(left.name, "is_not_null", ("",), negated=cmp != "!=")
        if isinstance(left, _Field) and isinstance(right, _Lit):
            return self.pred(left.name, _CMP_OPS[cmp], (right.value,), negated=cmp == "!=")
        return self.opaque([left, right], text)

    def opaque(self, values: list, text: str) -> Node:
        """A test on expressions rather than on one field: no row when it is a time window, a
        threshold on aggregated or computed values, or relates fields to each other."""
        if _calls_any(values, _TIME_FUNCTIONS):
            return TRUE
        names = set(_fields_of(values))
        kinds = {self.env.resolve(name).kind for name in names}
        if len(names) != 1 or kinds == {AGGREGATE}:
            return TRUE
        return Unparsed(text, "expression")

    def like(self, subject: object, pattern: object, text: str) -> Node:
        subject, pattern = _unwrap(subject), _unwrap(pattern)
        if not isinstance(subject, _Field):
            return self.opaque([subject, pattern], text)
        if not isinstance(pattern, _Lit):
            return TRUE  # field-to-field
        op, value = fold_like(pattern.value)
        return self.pred(subject.name, op, (value,))

    def in_values(self, subject: object, values: list, text: str) -> Node:
        subject = _unwrap(subject)
        if not isinstance(subject, _Field):
            return Unparsed(text, "expression")
        literals = [value for value in map(_unwrap, values) if isinstance(value, _Lit)]
        return _in_list(self, subject.name, [("eq", value.value) for value in literals])


def _unwrap(value: object) -> object:
    while isinstance(value, _Call) and value.name in _WRAPPERS and len(value.args) >= 1:
        value = value.args[0]
    return value


def _fields_of(values: list | tuple) -> tuple[str, ...]:
    """The fields an expression reads, except inside counting functions (`mvcount(x)`)."""
    names: list[str] = []
    for value in values:
        if isinstance(value, _Field):
            names.append(value.name)
        elif isinstance(value, _Expr):
            names.extend(value.fields)
        elif isinstance(value, _Call) and value.name not in _COUNT_FUNCTIONS:
            names.extend(_fields_of(value.args))
    return tuple(names)


def _calls_of(values: list) -> tuple[object, ...]:
    calls: list[object] = []
    for value in values:
        if isinstance(value, _Call):
            calls.append(value)
        elif isinstance(value, _Expr):
            calls.extend(value.calls)
    return tuple(calls)


def _calls_any(values: list | tuple, functions: frozenset[str]) -> bool:
    for value in values:
        if isinstance(value, _Call) and (value.name in functions
                                         or _calls_any(value.args, functions)):
            return True
        if isinstance(value, _Expr) and _calls_any(value.calls, functions):
            return True
    return False


def _text_of(value: object) -> str:
    return getattr(value, "text", "") or getattr(value, "name", "") or str(value)


def _fn_like(terms: _EvalTransformer, call: _Call) -> Node:
    if len(call.args) != 2:
        return Unparsed(call.text, "function like")
    return terms.like(call.args[0], call.args[1], call.text)


def _fn_match(terms: _EvalTransformer, call: _Call) -> Node:
    return _field_and_literal(terms, call, subject=0, literal=1, op="regex_match")


def _fn_cidrmatch(terms: _EvalTransformer, call: _Call) -> Node:
    return _field_and_literal(terms, call, subject=1, literal=0, op="cidr")


def _field_and_literal(terms: _EvalTransformer, call: _Call, subject: int, literal: int,
                       op: str) -> Node:
    if len(call.args) != 2:
        return Unparsed(call.text, f"function {call.name}")
    field_, value = _unwrap(call.args[subject]), _unwrap(call.args[literal])
    if not isinstance(field_, _Field):
        return terms.opaque([field_, value], call.text)
    if not isinstance(value, _Lit):
        return TRUE  # field-to-field
    return terms.pred(field_.name, op, (value.value,))


def _fn_isnull(terms: _EvalTransformer, call: _Call) -> Node:
    return _null_test(terms, call, negated=True)


def _fn_isnotnull(terms: _EvalTransformer, call: _Call) -> Node:
    return _null_test(terms, call, negated=False)


def _null_test(terms: _EvalTransformer, call: _Call, negated: bool) -> Node:
    if len(call.args) != 1:
        return Unparsed(call.text, f"function {call.name}")
    subject = _unwrap(call.args[0])
    if not isinstance(subject, _Field):
        return terms.opaque([subject], call.text)
    return terms.pred(subject.name, "is_not_null", ("",), negated=negated)


def _fn_in(terms: _EvalTransformer, call: _Call) -> Node:
    if not call.args:
        return Unparsed(call.text, "function in")
    return terms.in_values(call.args[0], list(call.args[1:]), call.text)


def _fn_searchmatch(terms: _EvalTransformer, call: _Call) -> Node:
    query = _unwrap(call.args[0]) if len(call.args) == 1 else None
    if not isinstance(query, _Lit):
        return Unparsed(call.text, "function searchmatch")
    return terms.reader.search_terms(query.value, terms.env, terms.depth)[0]


def _fn_true(terms: _EvalTransformer, call: _Call) -> Node:
    return TRUE


_BOOLEAN_FUNCTIONS: dict[str, Callable[[_EvalTransformer, _Call], Node]] = {
    "like": _fn_like,
    "match": _fn_match,
    "cidrmatch": _fn_cidrmatch,
    "isnull": _fn_isnull,
    "isnotnull": _fn_isnotnull,
    "in": _fn_in,
    "searchmatch": _fn_searchmatch,
    "true": _fn_true,
}


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclass
class _State:
    """A pipeline being read: its filters so far, its field environment, its data selection."""

    env: Env = field(default_factory=Env)
    parts: list[Node] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)

    def tree(self) -> Node:
        return and_(*self.parts) if self.parts else TRUE

    def add(self, node: Node) -> None:
        if node != TRUE:
            self.parts.append(node)


class _Reader:
    """Reads a pipeline stage by stage; one per search."""

    def __init__(self, unresolved: dict[str, str], lookups: dict[str, tuple[str, ...]]) -> None:
        self.unresolved = unresolved
        self.lookups = lookups
        self.event_types: list[str] = []  # selected by subsearches inside search terms

    def pipeline(self, text: str, depth: int) -> _State:
        state = _State()
        stages = split_pipeline(text)
        generating = bool(stages) and stages[0].strip() == ""
        for index, stage in enumerate(stages):
            if not stage.strip():
                continue
            command, args = _command(stage)
            if index == 0 and not generating and not _starts_generating(stage, command):
                command, args = "search", stage
            self.stage(command, args, stage, state, depth)
        return state

    def stage(self, command: str, args: str, stage: str, state: _State, depth: int) -> None:
        handler = _STAGES.get(command)
        macro = re.match(r"\s*(`[^`]*`)", stage)
        if macro and not command:
            # A macro left unexpanded where a command belongs: what it does is unknown.
            state.add(Unparsed(stage.strip(), self.unresolved.get(macro.group(1), MISSING)))
        elif handler is None:
            state.add(Unparsed(stage.strip(), f"unsupported command {command}"))
        else:
            handler(self, args, state, depth)

    def search_terms(self, text: str, env: Env, depth: int) -> tuple[Node, list[str]]:
        """Search terms as a tree, and the data model nodes (`nodename=`) they select."""
        if _MATCH_ALL.fullmatch(text):
            return TRUE, []  # `search *`, as every detection's filter macro expands
        transformer = _SearchTransformer(self, env, text, depth)
        node = self._parse(text, "search_expr", transformer)
        return node, transformer.nodenames

    def eval_condition(self, text: str, env: Env, depth: int) -> Node:
        return self._parse(text, "eval_expr", _EvalTransformer(self, env, text, depth))

    def _parse(self, text: str, start: str, transformer: Transformer) -> Node:
        try:
            tree = _PARSER.parse(text, start=start)
        except UnexpectedInput as error:
            return Unparsed(text.strip(), f"syntax error at column {error.column}")
        except LarkError as error:
            return Unparsed(text.strip(), f"syntax error: {error}")
        try:
            return transformer.transform(tree)
        except VisitError as error:
            raise error.orig_exc from error

    def subsearch(self, token: str, depth: int) -> _State | None:
        if depth >= _MAX_SUBSEARCH_DEPTH:
            return None
        return self.pipeline(token.strip()[1:-1], depth + 1)

    def subsearch_filter(self, terms: _Terms, token: str) -> Node:
        """A subsearch in search terms: a lookup list becomes an `in` row naming the lookup."""
        inner = token.strip()[1:-1]
        stages = [stage.strip() for stage in split_pipeline(inner) if stage.strip()]
        if stages and _command(stages[0])[0] == "inputlookup":
            lookup = _lookup_list(stages)
            if lookup is None:
                return Unparsed(token, "subsearch")
            name, fields = lookup
            return and_(*(terms.pred(field_, "in", (name,)) for field_ in fields))
        # Another subsearch yields values from the events it finds: what it requires of them
        # holds, as for an inner join.
        sub = self.subsearch(token, terms.depth)
        if sub is None:
            return Unparsed(token, "subsearch too deep")
        if sub.tree() == TRUE:
            return Unparsed(token, "subsearch")
        self.event_types.extend(sub.event_types)
        return sub.tree()


def _starts_generating(stage: str, command: str) -> bool:
    """A first stage written without its pipe: `search ...`, or `[ mstats ... ]` inside."""
    return command in _GENERATING and bool(re.match(r"\s*\w+\s+(?![=<>!])", stage))


def _command(stage: str) -> tuple[str, str]:
    match = re.match(r"\s*([A-Za-z_]\w*)\b(.*)", stage, re.DOTALL)
    if not match:
        return "", stage
    return match.group(1).lower(), match.group(2)


def _lookup_list(stages: list[str]) -> tuple[str, list[str]] | None:
    """`inputlookup name | rename a as b | fields b`: the lookup and the fields it lists."""
    words = _words(_command(stages[0])[1])
    names = [word for word in words if "=" not in word]
    if len(names) != 1:
        return None
    fields: list[str] = []
    for stage in stages[1:]:
        command, args = _command(stage)
        if command in ("fields", "table"):
            fields = [_field_name(word) for word in _words(args) if word not in ("+", "-")]
        elif command not in ("rename", "dedup", "format", "return", "eval"):
            return None
    return (names[0], fields) if fields else None


# ---------------------------------------------------------------------------------------------
# Argument reading for the commands


def _words(text: str) -> list[str]:
    """Top-level words: split on blanks and commas outside quotes, parentheses and brackets."""
    return [word for _, word in _word_spans(text)]


def _word_spans(text: str) -> list[tuple[int, str]]:
    spans: list[tuple[int, str]] = []
    depth = 0
    start: int | None = None
    for match in _WORD_CHUNKS.finditer(text):
        chunk = match.group()
        if chunk in ("(", "["):
            depth += 1
        elif chunk in (")", "]"):
            depth = max(depth - 1, 0)
        elif depth == 0 and (chunk[0].isspace() or chunk[0] == ","):
            if start is not None:
                spans.append((start, text[start:match.start()]))
            start = None
            continue
        if start is None:
            start = match.start()
    if start is not None:
        spans.append((start, text[start:]))
    return spans


def _field_name(word: str) -> str:
    return unquote(word.strip()).replace('"', "")


def _rename_pairs(args: str) -> list[tuple[str, str]]:
    words = _words(args)
    pairs = []
    for index in range(1, len(words) - 1):
        if words[index].lower() == "as":
            pairs.append((_field_name(words[index - 1]), _field_name(words[index + 1])))
    return pairs


def _aggregations(words: list[str]) -> dict[str, Binding]:
    """`count min(_time) as firstTime values(x) as y` as output column bindings."""
    names: dict[str, Binding] = {}
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word.endswith("="):
            index += 1  # an option written `name= value`
        if "=" in word.split("(")[0] or word.lower() == "as":
            continue
        column = word
        if index + 1 < len(words) and words[index].lower() == "as":
            column = words[index + 1]
            index += 2
        names[_field_name(column)] = _aggregate_binding(word)
    return names


def _aggregate_binding(expression: str) -> Binding:
    match = re.fullmatch(r"(\w+)\((.*)\)", expression.strip(), re.DOTALL)
    if match and match.group(1).lower() in _VALUE_AGGREGATES:
        argument = match.group(2).strip()
        if re.fullmatch(r"[\w.{}@\"'-]+", argument):
            return Binding(KEEP, _field_name(argument))
    return Binding(AGGREGATE)


def _split_by(words: list[str]) -> tuple[list[str], list[str]]:
    lowered = [word.lower() for word in words]
    if "by" not in lowered:
        return words, []
    at = lowered.index("by")
    return words[:at], [word for word in words[at + 1:] if "=" not in word]


def _closed_scope(aggregates: dict[str, Binding], by_fields: list[str]) -> Scope:
    names = {_field_name(name): Binding(KEEP) for name in by_fields}
    names.update(aggregates)
    return Scope(names=names, closed=True)


# ---------------------------------------------------------------------------------------------
# Stage handlers: (reader, arguments, state, depth)


def _stage_search(reader: _Reader, args: str, state: _State, depth: int) -> None:
    # `| search `x_filter`` expands to `search search *`: the repeated command word is no term.
    args = re.sub(r"^\s*search\s", " ", args)
    node, _ = reader.search_terms(args, state.env, depth)
    state.add(node)


def _stage_where(reader: _Reader, args: str, state: _State, depth: int) -> None:
    if not args.strip():
        state.add(Unparsed("where", "empty where"))
        return
    state.add(reader.eval_condition(args, state.env, depth))


def _stage_regex(reader: _Reader, args: str, state: _State, depth: int) -> None:
    match = re.fullmatch(r'\s*(?:([^\s=!"]+)\s*(!?=)\s*)?("(?:[^"\\]|\\.)*"|\S+)\s*', args)
    if not match:
        state.add(Unparsed(f"regex{args}", "regex arguments"))
        return
    name, cmp, pattern = match.group(1) or "_raw", match.group(2) or "=", match.group(3)
    node = _Terms(reader, state.env, args, depth).pred(
        _field_name(name), "regex_match", (unquote(pattern),), negated=cmp == "!=")
    state.add(node)


def _stage_stats(reader: _Reader, args: str, state: _State, depth: int) -> None:
    aggregates, by_fields = _split_by(_words(args))
    state.env.push(_closed_scope(_aggregations(aggregates), by_fields))


def _stage_eventstats(reader: _Reader, args: str, state: _State, depth: int) -> None:
    aggregates, _ = _split_by(_words(args))
    state.env.push(Scope(names=_aggregations(aggregates)))


def _stage_top(reader: _Reader, args: str, state: _State, depth: int) -> None:
    words = [word for word in _words(args) if "=" not in word]
    fields, by_fields = _split_by(words)
    aggregates = {"count": Binding(AGGREGATE), "percent": Binding(AGGREGATE)}
    state.env.push(_closed_scope(aggregates, fields + by_fields))


def _stage_rename(reader: _Reader, args: str, state: _State, depth: int) -> None:
    scope = Scope()
    for source, target in _rename_pairs(args):
        if "*" in target:
            scope.renames.append((source, target))
        else:
            scope.names[target] = Binding(KEEP, source)
    state.env.push(scope)


def _stage_eval(reader: _Reader, args: str, state: _State, depth: int) -> None:
    scope = Scope()
    for assignment in split_top(args, ","):
        name, sep, expression = assignment.partition("=")
        if not sep or not name.strip():
            continue
        scope.names[_field_name(name)] = _eval_binding(expression)
    state.env.push(scope)


def _eval_binding(expression: str) -> Binding:
    text = expression.strip()
    while True:
        match = re.fullmatch(r"(\w+)\s*\((.*)\)", text, re.DOTALL)
        if not match or match.group(1).lower() not in _WRAPPERS or "," in match.group(2):
            break
        text = match.group(2).strip()
    if re.fullmatch(r"'[^']+'|[A-Za-z_][\w.{}@]*", text) and not _is_number(text):
        return Binding(KEEP, unquote(text))
    return Binding(COMPUTED)


def _stage_lookup(reader: _Reader, args: str, state: _State, depth: int) -> None:
    words = [word for word in _words(args) if "=" not in word]
    lowered = [word.lower() for word in words]
    at = next((i for i, word in enumerate(lowered) if word in ("output", "outputnew")), None)
    scope = Scope()
    if at is not None:
        outputs = [target for _, target in _as_pairs(words[at + 1:])]
    else:
        inputs = {source for source, _ in _as_pairs(words[1:])}
        outputs = [name for name in reader.lookups.get(words[0] if words else "", ())
                   if name not in inputs]
    for name in outputs:
        scope.names[name] = Binding(COMPUTED)
    state.env.push(scope)


def _as_pairs(words: list[str]) -> list[tuple[str, str]]:
    """`a as b, c` as [(a, b), (c, c)]."""
    pairs: list[tuple[str, str]] = []
    index = 0
    while index < len(words):
        source = _field_name(words[index])
        if index + 2 < len(words) and words[index + 1].lower() == "as":
            pairs.append((source, _field_name(words[index + 2])))
            index += 3
        else:
            pairs.append((source, source))
            index += 1
    return pairs


def _stage_rex(reader: _Reader, args: str, state: _State, depth: int) -> None:
    names = re.findall(r"\(\?P?<([A-Za-z_]\w*)>", args)
    state.env.push(Scope(names={name: Binding(COMPUTED) for name in names}))


def _stage_spath(reader: _Reader, args: str, state: _State, depth: int) -> None:
    options = dict(re.findall(r"(\w+)\s*=\s*(\"[^\"]*\"|\S+)", args))
    output = options.get("output")
    if not output:
        return
    path = unquote(options.get("path", ""))
    source = unquote(options.get("input", "_raw"))
    binding = Binding(KEEP, path) if path and source == "_raw" else Binding(COMPUTED)
    state.env.push(Scope(names={unquote(output): binding}))


def _stage_iplocation(reader: _Reader, args: str, state: _State, depth: int) -> None:
    options = dict(re.findall(r"(\w+)\s*=\s*(\S+)", args))
    prefix = unquote(options.get("prefix", ""))
    names = ["City", "Country", "Region", "lat", "lon", "Continent", "MetroCode", "Timezone"]
    state.env.push(Scope(names={prefix + name: Binding(COMPUTED) for name in names}))


def _stage_computes(*names: str) -> Callable[[_Reader, str, _State, int], None]:
    def handler(reader: _Reader, args: str, state: _State, depth: int) -> None:
        state.env.push(Scope(names={name: Binding(COMPUTED) for name in names}))
    return handler


def _stage_strcat(reader: _Reader, args: str, state: _State, depth: int) -> None:
    words = [word for word in _words(args) if "=" not in word]
    if words:
        state.env.push(Scope(names={_field_name(words[-1]): Binding(COMPUTED)}))


def _stage_transaction(reader: _Reader, args: str, state: _State, depth: int) -> None:
    """`startswith=`/`endswith=` keep transactions holding such events: both conditions hold."""
    for match in _TRANSACTION_BOUND.finditer(args):
        value = match.group(2)
        if value.lower().startswith("eval("):
            state.add(reader.eval_condition(value[5:-1], state.env, depth))
        else:
            inner = value[1:-1] if value.startswith("(") else unquote(value)
            state.add(reader.search_terms(inner, state.env, depth)[0])
    names = {"duration": Binding(AGGREGATE), "eventcount": Binding(AGGREGATE)}
    state.env.push(Scope(names=names))


_TRANSACTION_BOUND = re.compile(
    r'\b(startswith|endswith)\s*=\s*((?:eval)?\((?:[^()"]|"(?:[^"\\]|\\.)*"|\([^()]*\))*\)'
    r'|"(?:[^"\\]|\\.)*"|\S+)', re.IGNORECASE)


def _stage_ignore(reader: _Reader, args: str, state: _State, depth: int) -> None:
    """A stage that neither filters nor names new columns a filter could test."""


def _stage_tstats(reader: _Reader, args: str, state: _State, depth: int) -> None:
    spans = _word_spans(args)
    lowered = [word.lower() for _, word in spans]
    where = lowered.index("where") if "where" in lowered else None
    by = _index_after(lowered, "by", where or 0)
    frm = _index_before(lowered, "from", where if where is not None else by)
    head_end = min(i for i in (frm, where, by, len(spans)) if i is not None)
    aggregates = _aggregations([word for _, word in spans[:head_end]])
    datamodel = _datamodel(args[spans[frm][0]:] if frm is not None else "")
    nodenames: list[str] = []
    if where is not None:
        end = spans[by][0] if by is not None else len(args)
        node, nodenames = reader.search_terms(args[spans[where][0] + 5:end], state.env, depth)
        state.add(node)
    state.event_types.extend(_datamodel_types(datamodel, nodenames))
    by_fields = [word for _, word in spans[by + 1:]] if by is not None else []
    state.env.push(_closed_scope(aggregates, [word for word in by_fields if "=" not in word]))


def _index_after(words: list[str], word: str, start: int) -> int | None:
    return next((i for i in range(start, len(words)) if words[i] == word), None)


def _index_before(words: list[str], word: str, end: int | None) -> int | None:
    stop = len(words) if end is None else end
    return next((i for i in range(stop) if words[i] == word), None)


def _datamodel(text: str) -> str:
    match = re.search(r"datamodel\s*[=:]?\s*\"?([\w.]+)\"?", text, re.IGNORECASE)
    return match.group(1) if match else ""


def _datamodel_types(datamodel: str, nodenames: list[str]) -> list[str]:
    if not datamodel:
        return []
    if not nodenames:
        return [f"splunk:datamodel/{datamodel}"]
    model = datamodel.split(".")[0]
    return [f"splunk:datamodel/{model}.{node.split('.')[-1]}" for node in nodenames]


def _stage_from(reader: _Reader, args: str, state: _State, depth: int) -> None:
    match = re.match(r"\s*(datamodel|inputlookup|lookup)\s*[:\s]\s*\"?([\w.-]+)\"?", args)
    if not match:
        state.add(Unparsed(f"from{args}".strip(), "from arguments"))
        return
    kind = "datamodel" if match.group(1) == "datamodel" else "lookup"
    state.event_types.append(f"splunk:{kind}/{match.group(2)}")


def _stage_datamodel(reader: _Reader, args: str, state: _State, depth: int) -> None:
    words = [word for word in _words(args) if "=" not in word]
    if words:
        node = words[1] if len(words) > 1 and words[1].lower() != "search" else ""
        state.event_types.append(f"splunk:datamodel/{words[0]}" + (f".{node}" if node else ""))


def _stage_inputlookup(reader: _Reader, args: str, state: _State, depth: int) -> None:
    spans = _word_spans(args)
    lowered = [word.lower() for _, word in spans]
    where = lowered.index("where") if "where" in lowered else None
    names = [word for _, word in spans[:where] if "=" not in word]
    if names:
        state.event_types.append(f"splunk:lookup/{unquote(names[0])}")
    node = TRUE
    if where is not None:
        node, _ = reader.search_terms(args[spans[where][0] + 5:], state.env, depth)
    if re.search(r"\bappend\s*=\s*(t|true|1)\b", args, re.IGNORECASE):
        _union(state, node)
    else:
        state.add(node)


def _stage_join(reader: _Reader, args: str, state: _State, depth: int) -> None:
    match = re.search(r"\[.*\]\s*$", args, re.DOTALL)
    sub = reader.subsearch(match.group(0), depth) if match else None
    if match is None or sub is None:
        reason = "subsearch too deep" if match else "join without subsearch"
        state.add(Unparsed(f"join{args}".strip(), reason))
        return
    options = dict(re.findall(r"(\w+)\s*=\s*(\S+)", args[:match.start()]))
    if options.get("type", "inner").lower() == "inner":
        state.add(sub.tree())
        state.event_types.extend(sub.event_types)
    state.env.push(Scope(sub=sub.env))


def _stage_append(reader: _Reader, args: str, state: _State, depth: int) -> None:
    match = re.search(r"\[.*\]\s*$", args, re.DOTALL)
    sub = reader.subsearch(match.group(0), depth) if match else None
    if match is None or sub is None:
        reason = "subsearch too deep" if match else "append without subsearch"
        state.add(Unparsed(f"append{args}".strip(), reason))
        return
    _union(state, sub.tree())
    state.event_types.extend(sub.event_types)
    state.env.push(Scope(sub=sub.env))


def _union(state: _State, other: Node) -> None:
    """Rows appended to those found so far: what was required so far is now one branch."""
    main = state.tree()
    state.parts = [] if main == TRUE else [Or((main, other))]


def _stage_anomalydetection(reader: _Reader, args: str, state: _State, depth: int) -> None:
    action = re.search(r"\baction\s*=\s*(\w+)", args)
    if action and action.group(1).lower() in ("annotate", "summary"):
        state.env.push(Scope(names={"isOutlier": Binding(COMPUTED)}))
        return
    state.add(Unparsed(f"anomalydetection{args}".strip(), "anomalydetection"))


def _stage_cyberchef(reader: _Reader, args: str, state: _State, depth: int) -> None:
    output = re.search(r"\boutfield\s*=\s*(\"[^\"]*\"|\S+)", args)
    if output:
        state.env.push(Scope(names={unquote(output.group(1)): Binding(COMPUTED)}))


def _stage_unsupported(reason: str) -> Callable[[_Reader, str, _State, int], None]:
    def handler(reader: _Reader, args: str, state: _State, depth: int) -> None:
        state.add(Unparsed(args.strip() or reason, reason))
    return handler


_STAGES: dict[str, Callable[[_Reader, str, _State, int], None]] = {
    "search": _stage_search,
    "where": _stage_where,
    "regex": _stage_regex,
    "tstats": _stage_tstats,
    "mstats": _stage_tstats,
    "from": _stage_from,
    "datamodel": _stage_datamodel,
    "inputlookup": _stage_inputlookup,
    "join": _stage_join,
    "append": _stage_append,
    "stats": _stage_stats,
    "chart": _stage_stats,
    "timechart": _stage_stats,
    "eventstats": _stage_eventstats,
    "streamstats": _stage_eventstats,
    "top": _stage_top,
    "rare": _stage_top,
    "rename": _stage_rename,
    "eval": _stage_eval,
    "lookup": _stage_lookup,
    "rex": _stage_rex,
    "spath": _stage_spath,
    "iplocation": _stage_iplocation,
    "strcat": _stage_strcat,
    "transaction": _stage_transaction,
    "addtotals": _stage_computes("Total"),
    "apply": _stage_ignore,  # TODO(#5): ML model outputs are not known, so not marked computed
    "map": _stage_unsupported("map search"),
    "anomalydetection": _stage_anomalydetection,
    "cyberchef": _stage_cyberchef,
    "outlier": _stage_unsupported("outlier"),
    "appendpipe": _stage_ignore,  # rows it appends derive from the rows already found
    **{command: _stage_ignore for command in (
        "table", "fields", "dedup", "sort", "head", "tail", "reverse", "bin", "bucket",
        "fillnull", "filldown", "convert", "makemv", "mvexpand", "mvcombine", "nomv", "xmlkv",
        "kvform", "extract", "fromjson", "fieldformat", "foreach", "outputlookup", "collect",
        "sendalert", "sendemail", "makeresults", "addinfo", "delta", "accum", "autoregress",
        "untable", "xyseries", "transpose", "localop", "format", "return", "typer", "tags",
        "rest", "eventcount", "metadata", "dbinspect", "fieldsummary", "cluster", "abstract",
        "highlight", "iconify", "setfields", "summary", "uniq", "multikv", "xpath", "replace",
    )},
}
