"""KQL (Kibana's `kuery` language) to a condition tree, with the grammar in `kuery.lark`.

Quoted values are exact phrases; unquoted values may hold `*` wildcards, which fold into
operators as DESIGN.md says. Escapes (`C\\:\\\\Windows\\\\*`) are undone before folding, so an
escaped `*` stays literal. Nested queries `parent:{ child:x }` name the field `parent.child`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from lark import Lark, Token, Transformer, UnexpectedInput
from lark.exceptions import VisitError

from kb.model import And, Node, Not, Or, Pred, Unparsed, and_, or_
from loaders.elastic_values import Part, fold, grouped

logger = logging.getLogger(__name__)

_PARSER = Lark(
    (Path(__file__).parent / "kuery.lark").read_text(encoding="utf-8"),
    parser="lalr", propagate_positions=True, maybe_placeholders=False,
)

_RANGE_OPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_UNQUOTED_PIECES = re.compile(
    r"\\(u[0-9a-fA-F]{4}|or|and|not|[trn]|.)|(\*)|([^\\*]+)", re.IGNORECASE | re.DOTALL)
_QUOTED_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_WHITESPACE_ESCAPES = {"t": "\t", "r": "\r", "n": "\n"}


def parse_kuery(text: str) -> Node:
    """The condition tree of a KQL query; syntax it cannot read is an Unparsed leaf."""
    try:
        tree = _PARSER.parse(text)
        return _KueryTransformer(text).transform(tree)
    except UnexpectedInput as error:
        return Unparsed(text, f"KQL syntax error at line {error.line}, column {error.column}")
    except VisitError as error:
        original = error.orig_exc
        return Unparsed(text, f"KQL not understood: {original}")


# ---- value lists, bound to their field once the field is known

@dataclass(frozen=True)
class _Value:
    parts: tuple[Part, ...]
    quoted: bool

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.parts)

    def folded(self) -> tuple[str, str]:
        return ("eq", self.text) if self.quoted else fold(self.parts)


@dataclass(frozen=True)
class _ValueOr:
    children: tuple[object, ...]


@dataclass(frozen=True)
class _ValueAnd:
    children: tuple[object, ...]


@dataclass(frozen=True)
class _ValueNot:
    child: object


def _bind(field: str, value: object) -> Node:
    match value:
        case _Value():
            return grouped(field, [value.folded()])
        case _ValueOr():
            plain = [child.folded() for child in value.children if isinstance(child, _Value)]
            others = [_bind(field, c) for c in value.children if not isinstance(c, _Value)]
            return or_(*([grouped(field, plain)] if plain else []), *others)
        case _ValueAnd():
            return and_(*(_bind(field, child) for child in value.children))
        case _ValueNot():
            return Not(_bind(field, value.child))
    raise TypeError(f"not a KQL value: {value!r}")


def _prefix(node: Node, parent: str) -> Node:
    """A nested query's tree with every field named from its parent."""
    match node:
        case Pred():
            return replace(node, field=f"{parent}.{node.field}" if node.field else parent)
        case Not():
            return Not(_prefix(node.child, parent))
        case And():
            return And(tuple(_prefix(child, parent) for child in node.children))
        case Or():
            return Or(tuple(_prefix(child, parent) for child in node.children))
    return node


# ---- escapes

def _unquoted_parts(raw: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    for match in _UNQUOTED_PIECES.finditer(raw):
        escaped, star, text = match.groups()
        if star:
            parts.append(("*", True))
        elif text:
            parts.append((text, False))
        else:
            parts.append((_unescape_one(escaped), False))
    return tuple(parts)


def _unescape_one(escaped: str) -> str:
    if len(escaped) == 5 and escaped[0] in "uU":
        return chr(int(escaped[1:], 16))
    return _WHITESPACE_ESCAPES.get(escaped, escaped)


def _unquote(token: str) -> str:
    """A quoted KQL string's text: `\\"` and `\\\\` are escapes, other backslashes literal."""
    def one(match: re.Match[str]) -> str:
        char = match.group(1)
        if char in '"\\':
            return char
        return _WHITESPACE_ESCAPES.get(char, match.group(0))
    return _QUOTED_ESCAPE.sub(one, token[1:-1])


def _literal_text(token: Token) -> str:
    if token.type == "QUOTED":
        return _unquote(token)
    return "".join(text for text, _ in _unquoted_parts(token))


class _KueryTransformer(Transformer):
    """Builds model nodes from the KQL parse tree; methods are named after grammar rules."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def empty(self, _children: list) -> Node:
        return And(())

    def or_query(self, children: list[Node]) -> Node:
        return or_(*children)

    def and_query(self, children: list[Node]) -> Node:
        return and_(*children)

    def negation(self, children: list[Node]) -> Node:
        return Not(children[0])

    def nested(self, children: list) -> Node:
        field, query = children
        return _prefix(query, field)

    def range(self, children: list) -> Node:
        field, op, value = children
        return Pred(field, _RANGE_OPS[str(op)], (value,))

    def field_value(self, children: list) -> Node:
        field, value = children
        return _bind(field, value)

    def keyword(self, children: list) -> Node:
        return Pred("", "keyword", (children[0].text,))

    def value_or(self, children: list) -> _ValueOr:
        return _ValueOr(tuple(children))

    def value_and(self, children: list) -> _ValueAnd:
        return _ValueAnd(tuple(children))

    def value_negation(self, children: list) -> _ValueNot:
        return _ValueNot(children[0])

    def field(self, children: list[Token]) -> str:
        return _literal_text(children[0])

    def literal(self, children: list[Token]) -> str:
        return _literal_text(children[0])

    def value(self, children: list[Token]) -> _Value:
        first, last = children[0], children[-1]
        if first.type == "QUOTED":
            return _Value(((_unquote(first), False),), quoted=True)
        return _Value(_unquoted_parts(self._text[first.start_pos:last.end_pos]), quoted=False)
