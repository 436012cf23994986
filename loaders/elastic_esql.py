"""ES|QL to a condition tree, with the grammar in `esql.lark`.

A query is split on its top-level pipes and each stage parsed alone, so a command the grammar
does not know costs that one stage (an Unparsed leaf), not the whole query. Stages are read
in order while keeping track of the columns they make:

- `from` sources are the rule's event types, not rows;
- `where` conditions are ANDed; a filter on a column an `eval`, `grok`, `dissect` or
  `completion` computed is a Pred marked computed, a filter on a `stats` aggregate is a
  threshold and gives no row;
- `eval x = field`, `eval x = to_lower(field)` and `rename field as x` make `x` another name
  for `field`, so a later filter on `x` is a row on `field`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, UnexpectedInput, v_args
from lark.exceptions import VisitError
from lark.tree import Meta

from kb.model import And, Node, Not, Or, Pred, Unparsed, and_, or_
from loaders.elastic_kuery import parse_kuery
from loaders.elastic_lucene import parse_lucene
from loaders.elastic_values import escaped_pattern_parts, fold, grouped, values_pred

logger = logging.getLogger(__name__)

_PARSER = Lark(
    (Path(__file__).parent / "esql.lark").read_text(encoding="utf-8"),
    start="stage", parser="lalr", propagate_positions=True, maybe_placeholders=False,
)

_STAGE_SCANNER = re.compile(
    r'"""[\s\S]*?"""|"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*[\s\S]*?\*/|\||[^"/|]+|["/]')
_COMMENTS = re.compile(r'//[^\n]*|/\*[\s\S]*?\*/')
_STRING_ESCAPE = re.compile(r"\\([tnr\"\\])")
_STRING_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}
_GROK_NAMES = re.compile(r"%\{\w+:([\w.@]+)(?::\w+)?\}")
_DISSECT_NAMES = re.compile(r"%\{[+?*&]?([\w.@]+)(?:->)?\}")
_QUOTED_PART = re.compile(r"`((?:[^`]|``)+)`")
_WRAPPER = re.compile(r"to_\w+")
_COMPARATORS = {"==": "eq", "!=": "eq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_STRING_FUNCTIONS = {"starts_with": "starts_with", "ends_with": "ends_with",
                     "cidr_match": "cidr", "match": "match", "match_phrase": "match",
                     "contains": "contains", "mv_contains": "eq"}


@dataclass
class EsqlQuery:
    """What an ES|QL query gives a rule: its tree, `from` sources and computed columns."""

    condition: Node
    sources: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


def parse_esql(text: str) -> EsqlQuery:
    """Parse an ES|QL query stage by stage; a stage the grammar cannot read is Unparsed."""
    pipeline = _Pipeline()
    for offset, stage in split_stages(text):
        if _COMMENTS.sub("", stage).strip():
            pipeline.run(stage, _line_of(text, offset))
    return EsqlQuery(and_(*pipeline.conditions) if pipeline.conditions else And(()),
                     pipeline.sources, pipeline.computed, pipeline.commands)


def split_stages(text: str) -> list[tuple[int, str]]:
    """The stages of a query with their offsets: split on pipes outside strings and comments."""
    stages, start = [], 0
    for match in _STAGE_SCANNER.finditer(text):
        if match.group() == "|":
            stages.append((start, text[start:match.start()]))
            start = match.end()
    stages.append((start, text[start:]))
    return stages


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# ---- columns and the values an expression can have

@dataclass(frozen=True)
class _Column:
    """What a column name stands for: a source `field`, a `computed` column or an `aggregate`."""

    kind: str
    name: str


@dataclass(frozen=True)
class _Ref:
    written: str
    column: _Column


@dataclass(frozen=True)
class _Lit:
    value: str | None
    kind: str


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[object, ...]
    text: str


@dataclass(frozen=True)
class _Expr:
    text: str
    refs: tuple[_Ref, ...]


_NO_ROW = None


def _refs(value: object) -> tuple[_Ref, ...]:
    match value:
        case _Ref():
            return (value,)
        case _Call():
            return tuple(ref for arg in value.args for ref in _refs(arg))
        case _Expr():
            return value.refs
    return ()


def _string(value: object) -> str | None:
    return value.value if isinstance(value, _Lit) and value.kind == "string" else None


def _scalar(value: object) -> str | None:
    if isinstance(value, _Lit) and value.kind in {"string", "number", "bool"}:
        return value.value
    return None


class _Pipeline:
    """Runs the stages in order, keeping the column table between them."""

    def __init__(self) -> None:
        self.columns: dict[str, _Column] = {}
        self.conditions: list[Node] = []
        self.sources: list[str] = []
        self.computed: list[str] = []
        self.commands: list[str] = []

    def run(self, stage: str, line: int) -> None:
        try:
            tree = _PARSER.parse(stage)
            command = _StageTransformer(stage, self.columns, self.computed).transform(tree)
        except UnexpectedInput as error:
            reason = (f"ES|QL stage not understood at line {line + error.line - 1}, "
                      f"column {error.column}")
            self.commands.append("?")
            self.conditions.append(Unparsed(stage.strip(), reason))
            return
        except VisitError as error:
            self.commands.append("?")
            self.conditions.append(Unparsed(stage.strip(), f"ES|QL: {error.orig_exc}"))
            return
        self.commands.append(command[0])
        getattr(self, f"_{command[0]}")(*command[1:])

    def _from(self, sources: list[str]) -> None:
        self.sources.extend(source for source in sources if source not in self.sources)

    def _where(self, condition: Node | None) -> None:
        if condition is not None:
            self.conditions.append(condition)

    def _eval(self, assignments: list[tuple[str, object]]) -> None:
        for name, value in assignments:
            self.columns[name] = _column_of(name, value)

    def _rename(self, renames: list[tuple[str, str]]) -> None:
        for old, new in renames:
            self.columns[new] = self.columns.pop(old, _Column("field", old))

    def _stats(self, inline: bool, aggregates: list[tuple[str, object]],
               groups: list[tuple[str, object]]) -> None:
        columns = dict(self.columns) if inline else {}
        for name, value in groups:
            columns[name] = _column_of(name, value)
        for name, _ in aggregates:
            columns[name] = _Column("aggregate", name)
        self.columns = columns

    def _computed(self, names: list[str]) -> None:
        for name in names:
            self.columns[name] = _Column("computed", name)

    def _other(self) -> None:
        pass


def _column_of(name: str, value: object) -> _Column:
    """The column an assignment makes: another name for a field, or a computed column."""
    if isinstance(value, _Ref):
        return value.column
    return _Column("computed", name)


class _StageTransformer(Transformer):
    """Builds one stage's command; conditions become model nodes, values stay small records.

    Methods are named after grammar rules. A condition method returns `None` when the
    comparison gives no row (field against field, a threshold on an aggregate).
    """

    def __init__(self, text: str, columns: dict[str, _Column], computed: list[str]) -> None:
        super().__init__()
        self._text = text
        self._columns = columns
        self._computed = computed

    def _slice(self, meta: Meta) -> str:
        return " ".join(self._text[meta.start_pos:meta.end_pos].split())

    # ---- commands

    def from_cmd(self, children: list) -> tuple:
        return ("from", [child for child in children if isinstance(child, str)
                         and not isinstance(child, Token)])

    def source(self, children: list[Token]) -> str:
        token = children[0]
        return _unquote(token) if token.type == "STRING" else str(token)

    def where_cmd(self, children: list) -> tuple:
        return ("where", self._condition(children[-1]))

    def eval_cmd(self, children: list) -> tuple:
        return ("eval", [child for child in children if isinstance(child, tuple)])

    def stats_cmd(self, children: list) -> tuple:
        inline = any(isinstance(c, Token) and c.type == "INLINE" for c in children)
        by_at = next((i for i, c in enumerate(children)
                      if isinstance(c, Token) and c.type == "BY"), len(children))
        aggregates = [c for c in children[:by_at] if isinstance(c, tuple)]
        groups = [c for c in children[by_at:] if isinstance(c, tuple)]
        return ("stats", inline, aggregates, groups)

    def keep_cmd(self, _children: list) -> tuple:
        return ("other",)

    drop_cmd = sort_cmd = limit_cmd = mv_expand_cmd = keep_cmd

    def rename_cmd(self, children: list) -> tuple:
        return ("rename", [child for child in children if isinstance(child, tuple)])

    def grok_cmd(self, children: list) -> tuple:
        return ("computed", _GROK_NAMES.findall(_unquote(children[-1])))

    def dissect_cmd(self, children: list) -> tuple:
        pattern = next(c for c in children if isinstance(c, Token) and c.type == "STRING")
        names = [n for n in _DISSECT_NAMES.findall(_unquote(pattern)) if n]
        return ("computed", names)

    def completion_cmd(self, children: list) -> tuple:
        types = [c.type if isinstance(c, Token) else "" for c in children]
        if "AS" in types:
            return ("computed", [children[-1].written])
        before_with = [c for c in children[:types.index("WITH")] if not isinstance(c, Token)]
        target = before_with[0].written if len(before_with) == 2 else "completion"
        return ("computed", [target])

    # ---- command parts

    def assign(self, children: list) -> tuple[str, object]:
        target, value = children
        return (target.written, value)

    @v_args(meta=True)
    def unnamed(self, meta: object, children: list) -> tuple[str, object]:
        return (self._slice(meta), children[0])

    def aggregate(self, children: list) -> tuple[str, object]:
        # TODO(#4): a per-aggregate `WHERE` narrows what a threshold counts; it gives no row yet.
        return children[0]

    def rename_as(self, children: list) -> tuple[str, str]:
        return (children[0], children[-1])

    def rename_to(self, children: list) -> tuple[str, str]:
        return (children[-1], children[0])

    def name_pattern(self, children: list[Token]) -> str:
        return _unbacktick(children[0])

    # ---- conditions

    def or_expr(self, children: list) -> Node | None:
        return _join(or_, [self._condition(child) for child in children])

    def and_expr(self, children: list) -> Node | None:
        return _join(and_, [self._condition(child) for child in children])

    def negation(self, children: list) -> Node | None:
        child = self._condition(children[-1])
        return None if child is None else Not(child)

    def comparison(self, children: list) -> Node | None:
        left, comparator, right = children[0], str(children[1]), children[2]
        if _scalar(left) is not None and _scalar(right) is None:
            left, right, comparator = right, left, _FLIPPED[comparator]
        value = _scalar(right)
        subject = None if value is None else self._subject(left)
        if subject is None or value is None:
            return _NO_ROW
        name, computed = subject
        return Pred(name, _COMPARATORS[comparator], (value,), negated=comparator == "!=",
                    computed=computed)

    def like(self, children: list) -> Node | None:
        subject, negated, patterns = self._pattern_test(children)
        if subject is None:
            return _NO_ROW
        name, computed = subject
        node = grouped(name, [fold(escaped_pattern_parts(p)) for p in patterns], computed)
        return Not(node) if negated else node

    def rlike(self, children: list) -> Node | None:
        subject, negated, patterns = self._pattern_test(children)
        if subject is None:
            return _NO_ROW
        name, computed = subject
        node = Pred(name, "regex_match", tuple(dict.fromkeys(patterns)), computed=computed)
        return Not(node) if negated else node

    def in_list(self, children: list) -> Node | None:
        negated = any(isinstance(c, Token) and c.type == "NOT" for c in children)
        items = [c for c in children[1:] if not isinstance(c, Token)]
        values = [_scalar(item) for item in items]
        if any(value is None for value in values):
            return _NO_ROW
        subject = self._subject(children[0])
        if subject is None:
            return _NO_ROW
        name, computed = subject
        node = values_pred(name, [v for v in values if v is not None], computed)
        return Not(node) if negated else node

    def null_test(self, children: list) -> Node | None:
        subject = self._subject(children[0])
        if subject is None:
            return _NO_ROW
        name, computed = subject
        negated = not any(isinstance(c, Token) and c.type == "NOT" for c in children)
        return Pred(name, "is_not_null", ("",), negated=negated, computed=computed)

    def match_operator(self, children: list) -> Node | None:
        value = _scalar(children[1])
        subject = None if value is None else self._subject(children[0])
        if subject is None or value is None:
            return _NO_ROW
        return Pred(subject[0], "match", (value,), computed=subject[1])

    def patterns(self, children: list[Token]) -> list[str]:
        return [_unquote(child) for child in children]

    def _pattern_test(self, children: list) -> tuple[tuple[str, bool] | None, bool, list[str]]:
        negated = any(isinstance(c, Token) and c.type == "NOT" for c in children)
        return self._subject(children[0]), negated, children[-1]

    def _condition(self, value: object) -> Node | None:
        """A value used where a condition is expected."""
        match value:
            case None | And() | Or() | Not() | Pred() | Unparsed():
                return value
            case _Lit(kind="bool", value="true"):
                return _NO_ROW
            case _Call():
                return self._function_condition(value)
            case _Ref():
                subject = self._subject(value)
                if subject is None:
                    return _NO_ROW
                return Pred(subject[0], "eq", ("true",), computed=subject[1])
        text = getattr(value, "text", None) or str(value)
        return Unparsed(text, "ES|QL value used as a condition not read")

    def _function_condition(self, call: _Call) -> Node | None:
        if call.name in {"kql", "qstr"} and len(call.args) == 1 and _string(call.args[0]):
            text = _string(call.args[0]) or ""
            return parse_kuery(text) if call.name == "kql" else parse_lucene(text)
        if call.name not in _STRING_FUNCTIONS or len(call.args) < 2:
            return Unparsed(call.text, f"ES|QL function {call.name} not read")
        values = [_scalar(arg) for arg in call.args[1:]]
        if any(value is None for value in values):
            return _NO_ROW
        subject = self._subject(call.args[0])
        if subject is None:
            return _NO_ROW
        texts = tuple(dict.fromkeys(v for v in values if v is not None))
        return Pred(subject[0], _STRING_FUNCTIONS[call.name], texts, computed=subject[1])

    def _subject(self, value: object) -> tuple[str, bool] | None:
        """The (field, computed) a value side names, or None when it gives no row."""
        refs = _refs(value)
        if len(refs) != 1 or any(ref.column.kind == "aggregate" for ref in refs):
            return None  # a constant, two fields, or a threshold on an aggregate
        column = refs[0].column
        if isinstance(value, _Ref) and column.kind == "field":
            return column.name, False
        name = value.written if isinstance(value, _Ref) else getattr(value, "text", "")
        if name not in self._computed:
            self._computed.append(name)
        return name, True

    # ---- values

    def column(self, children: list[Token]) -> _Ref:
        name = _unbacktick(children[0])
        return _Ref(name, self._columns.get(name, _Column("field", name)))

    @v_args(meta=True)
    def function(self, meta: object, children: list) -> object:
        name = str(children[0]).lower()
        args = tuple(child for child in children[1:] if not isinstance(child, Token | Tree))
        if _WRAPPER.fullmatch(name) and len(args) == 1 and isinstance(args[0], _Ref):
            return args[0]  # a type or case wrapper: the field itself
        return _Call(name, args, self._slice(meta))

    def cast(self, children: list) -> object:
        return children[0]

    @v_args(meta=True)
    def minus(self, meta: object, children: list) -> object:
        value = children[0]
        if isinstance(value, _Lit) and value.kind == "number":
            return _Lit(f"-{value.value}", "number")
        return _Expr(self._slice(meta), _refs(value))

    @v_args(meta=True)
    def sum(self, meta: object, children: list) -> _Expr:
        refs = tuple(ref for child in children for ref in _refs(child))
        return _Expr(self._slice(meta), refs)

    product = sum

    def string(self, children: list[Token]) -> _Lit:
        return _Lit(_unquote(children[0]), "string")

    def number(self, children: list[Token]) -> _Lit:
        return _Lit(str(children[0]), "number")

    def duration(self, children: list[Token]) -> _Lit:
        return _Lit(f"{children[0]} {children[1]}", "duration")

    def true(self, _children: list) -> _Lit:
        return _Lit("true", "bool")

    def false(self, _children: list) -> _Lit:
        return _Lit("false", "bool")

    def null(self, _children: list) -> _Lit:
        return _Lit(None, "null")

    def param(self, children: list[Token]) -> _Lit:
        return _Lit(str(children[0]), "param")

    def array(self, _children: list) -> _Lit:
        return _Lit(None, "array")


def _join(join: object, children: list[Node | None]) -> Node | None:
    kept = [child for child in children if child is not None]
    return join(*kept) if kept else None  # type: ignore[operator]


def _unquote(token: str) -> str:
    if token.startswith('"""'):
        return token[3:-3]
    return _STRING_ESCAPE.sub(lambda m: _STRING_ESCAPES.get(m.group(1), m.group(1)), token[1:-1])


def _unbacktick(token: str) -> str:
    """A name without its quoting: source.`as`.name is source.as.name."""
    return _QUOTED_PART.sub(lambda m: m.group(1).replace("``", "`"), str(token))
