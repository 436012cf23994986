"""EQL to a condition tree, through the `eql` package's parser and AST.

The parser runs in Elastic syntax with what the detection-rules corpus uses switched on:
`with runs=N`, missing-event steps `![...]` and `sample`. Optimisations stay off so the
tree keeps the shape the rule author wrote. `:`, `like` and their `~` forms arrive as the
`wildcard()` function, `regex` as `match()`; case flags change nothing here.

A `sequence` or `sample` is the AND of its steps; a missing-event step and the `until` step
must not happen, so they are NOTs. Each step's event category (`process where`) is kept for
the rule's event types. Join keys, spans and field-to-field comparisons give no row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import eql
from eql import ast
from eql.errors import EqlError
from eql.parser import ParserConfig
from eql.pipes import FilterPipe

from kb.model import And, Node, Not, Pred, Unparsed, and_, or_
from loaders.elastic_values import fold, grouped, is_null, not_null, pattern_parts, values_pred

logger = logging.getLogger(__name__)

_CONFIG = ParserConfig(elasticsearch_syntax=True, allow_runs=True, allow_negation=True,
                       allow_sample=True, check_functions=False, optimized=False)

_COMPARATORS = {"==": "eq", "!=": "eq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_STRING_FUNCTIONS = {"startswith": "starts_with", "endswith": "ends_with",
                     "stringcontains": "contains"}
_WRAPPERS = frozenset({"string", "number"})


@dataclass
class EqlQuery:
    """What an EQL query gives a rule: its tree, event categories and computed columns."""

    condition: Node
    categories: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    properties: dict[str, object] = field(default_factory=dict)


def parse_eql(text: str) -> EqlQuery:
    """Parse an EQL query; syntax the eql package refuses is one Unparsed leaf."""
    try:
        with _CONFIG:
            query = eql.parse_query(text)
    except EqlError as error:
        return EqlQuery(Unparsed(text, _error_reason(error)))
    reader = _EqlReader()
    condition = reader.piped(query)
    return EqlQuery(condition, reader.categories, reader.computed, reader.properties)


def _error_reason(error: EqlError) -> str:
    message = getattr(error, "error_msg", None) or str(error).splitlines()[0]
    line, column = getattr(error, "line", None), getattr(error, "column", None)
    if line is None:
        return f"EQL not understood: {message}"
    return f"EQL syntax error at line {line + 1}, column {column + 1}: {message}"


def _field_name(node: ast.Field) -> str:
    name = node.base
    for part in node.path:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def _literal(node: ast.BaseNode) -> str | None:
    """A literal's text as the rule means it, or None for anything else."""
    match node:
        case ast.Boolean():
            return "true" if node.value else "false"
        case ast.String():
            return node.value
        case ast.Number():
            return str(node.value)
    return None


class _EqlReader:
    """Walks an eql AST into model nodes; `None` stands for "no row" (a join, a constant)."""

    def __init__(self) -> None:
        self.categories: list[str] = []
        self.computed: list[str] = []
        self.properties: dict[str, object] = {}

    # ---- queries and their steps

    def piped(self, query: ast.PipedQuery) -> Node:
        node = self.base(query.first)
        filters = [self.expr(pipe.expression) for pipe in query.pipes
                   if isinstance(pipe, FilterPipe)]
        if query.pipes:
            self.properties["eql_pipes"] = [pipe.name for pipe in query.pipes]
        return and_(node, *(f for f in filters if f is not None))

    def base(self, query: ast.BaseNode) -> Node:
        match query:
            case ast.EventQuery():
                self.properties["eql_kind"] = "event"
                return self.event(query)
            case ast.Sequence() | ast.Join() | ast.Sample():
                self.properties["eql_kind"] = type(query).__name__.lower()
                steps = [self.step(subquery) for subquery in query.queries]
                close = getattr(query, "close", None)
                if close is not None:
                    steps.append(Not(self.step(close)))
                return and_(*steps) if steps else And(())
        return Unparsed(query.render(), f"EQL query kind {type(query).__name__} not read")

    def step(self, subquery: ast.SubqueryBy) -> Node:
        node = self.event(subquery.query)
        return Not(node) if subquery.data.get("is_negated") else node

    def event(self, query: ast.EventQuery) -> Node:
        if query.event_type != "any" and query.event_type not in self.categories:
            self.categories.append(query.event_type)
        node = self.expr(query.query)
        return And(()) if node is None else node

    # ---- boolean expressions

    def expr(self, node: ast.BaseNode) -> Node | None:
        match node:
            case ast.And():
                return self._join(and_, node.terms)
            case ast.Or():
                return self._join(or_, node.terms)
            case ast.Not():
                child = self.expr(node.term)
                return None if child is None else Not(child)
            case ast.Comparison():
                return self.comparison(node)
            case ast.InSet():
                return self.in_set(node)
            case ast.IsNull() | ast.IsNotNull():
                return self.null_test(node)
            case ast.FunctionCall():
                return self.function(node)
            case ast.Boolean():
                return None if node.value else Unparsed(node.render(), "EQL constant false")
            case ast.Field():
                return Pred(_field_name(node), "eq", ("true",))
            case ast.NamedSubquery():
                return self.event(node.query)
        return Unparsed(node.render(), f"EQL {type(node).__name__} not read")

    def _join(self, join: object, terms: list[ast.BaseNode]) -> Node | None:
        children = [child for child in map(self.expr, terms) if child is not None]
        return join(*children) if children else None  # type: ignore[operator]

    def comparison(self, node: ast.Comparison) -> Node | None:
        left, comparator, right = node.left, node.comparator, node.right
        if _literal(left) is not None and _literal(right) is None:
            left, right, comparator = right, left, _FLIPPED[comparator]
        value = _literal(right)
        name = None if value is None else self.column(left)
        if value is None or name is None:
            return None  # field-to-field, or nothing to compare against
        computed = not isinstance(self._unwrap(left), ast.Field)
        return Pred(name, _COMPARATORS[comparator], (value,), negated=comparator == "!=",
                    computed=computed)

    def in_set(self, node: ast.InSet) -> Node | None:
        values = [_literal(item) for item in node.container]
        if any(value is None for value in values):
            return None
        name = self.column(node.expression)
        if name is None:
            return None
        computed = not isinstance(self._unwrap(node.expression), ast.Field)
        return values_pred(name, [v for v in values if v is not None], computed=computed)

    def null_test(self, node: ast.IsNull | ast.IsNotNull) -> Node | None:
        name = self.column(node.expr)
        if name is None:
            return None
        computed = not isinstance(self._unwrap(node.expr), ast.Field)
        return (is_null if isinstance(node, ast.IsNull) else not_null)(name, computed)

    def function(self, node: ast.FunctionCall) -> Node | None:
        name = node.name.lower()
        if name in _WRAPPERS and len(node.arguments) == 1:
            return self.expr(node.arguments[0])
        if name not in {"wildcard", "match", "cidrmatch", *_STRING_FUNCTIONS}:
            return Unparsed(node.render(), f"EQL function {node.name} not read")
        subject, *arguments = node.arguments
        values = [_literal(argument) for argument in arguments]
        if not values or any(value is None for value in values):
            return None  # compares two fields
        column = self.column(subject)
        if column is None:
            return None
        computed = not isinstance(self._unwrap(subject), ast.Field)
        texts = [value for value in values if value is not None]
        if name == "wildcard":
            return grouped(column, [fold(pattern_parts(t)) for t in texts], computed=computed)
        op = {"match": "regex_match", "cidrmatch": "cidr"}.get(name) or _STRING_FUNCTIONS[name]
        return Pred(column, op, tuple(dict.fromkeys(texts)), computed=computed)

    # ---- the field side of a comparison

    def _unwrap(self, node: ast.BaseNode) -> ast.BaseNode:
        while (isinstance(node, ast.FunctionCall) and node.name.lower() in _WRAPPERS
               and len(node.arguments) == 1):
            node = node.arguments[0]
        return node

    def column(self, node: ast.BaseNode) -> str | None:
        """The field a value side names, or a computed expression's text, or None."""
        node = self._unwrap(node)
        if isinstance(node, ast.Field):
            return _field_name(node)
        if _literal(node) is not None or _field_count(node) != 1:
            return None  # a constant, or an expression over two fields
        text = node.render()
        if text not in self.computed:
            self.computed.append(text)
        return text


def _field_count(node: ast.BaseNode) -> int:
    if isinstance(node, ast.Field):
        return 1
    children = []
    for slot in getattr(node, "__slots__", ()):
        value = getattr(node, slot, None)
        children.extend(value if isinstance(value, list) else [value])
    return sum(_field_count(child) for child in children if isinstance(child, ast.BaseNode))
