"""Lucene query strings to a condition tree, through `luqum`'s parser.

Elasticsearch's `query_string` joins terms written side by side with OR (its default
operator), so luqum's `UnknownOperation` is an OR here. Operators are upper-case in Lucene; a
lower-case `or` between values is read as the OR its author meant rather than as a value.
"""

from __future__ import annotations

import logging
import re

from luqum import tree
from luqum.exceptions import ParseError
from luqum.parser import parser

from kb.model import And, Node, Not, Pred, Unparsed, and_, or_
from loaders.elastic_values import escaped_pattern_parts, fold, grouped

logger = logging.getLogger(__name__)

_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def parse_lucene(text: str) -> Node:
    """The condition tree of a Lucene query; what luqum cannot read is an Unparsed leaf."""
    if not text.strip():
        return And(())
    try:
        parsed = parser.parse(text)
    except (ParseError, TypeError, ValueError) as error:
        return Unparsed(text, f"Lucene syntax error: {error}")
    return _node(parsed, "")


def _node(item: tree.Item, field: str) -> Node:
    match item:
        case tree.SearchField():
            return _node(item.expr, item.name)
        case tree.Group() | tree.FieldGroup():
            return _node(item.expr, field)
        case tree.AndOperation():
            return and_(*(_node(child, field) for child in item.children))
        case tree.OrOperation() | tree.UnknownOperation():
            return _alternatives(item, field)
        case tree.Not() | tree.Prohibit():
            return Not(_node(item.a, field))
        case tree.Plus():
            return _node(item.a, field)
        case tree.Word() | tree.Phrase():
            return grouped(field, [_folded(item)]) if field else _keyword(item)
        case tree.Regex():
            return Pred(field, "regex_match", (item.value[1:-1],))
        case tree.Range():
            return _range(item, field)
    return Unparsed(str(item), f"Lucene {type(item).__name__} not read")


def _alternatives(item: tree.BaseOperation, field: str) -> Node:
    children = [child for child in item.children
                if not (isinstance(item, tree.UnknownOperation) and _is_lower_or(child))]
    values = [child for child in children if isinstance(child, tree.Word | tree.Phrase)]
    if not field or not values:
        return or_(*(_node(child, field) for child in children))
    others = [_node(child, field) for child in children if child not in values]
    return or_(grouped(field, [_folded(value) for value in values]), *others)


def _is_lower_or(item: tree.Item) -> bool:
    return isinstance(item, tree.Word) and item.value == "or"


def _folded(item: tree.Word | tree.Phrase) -> tuple[str, str]:
    if isinstance(item, tree.Phrase):
        return "eq", _ESCAPE.sub(r"\1", item.value[1:-1])
    return fold(escaped_pattern_parts(item.value))


def _keyword(item: tree.Word | tree.Phrase) -> Node:
    text = item.value[1:-1] if isinstance(item, tree.Phrase) else item.value
    return Pred("", "keyword", (_ESCAPE.sub(r"\1", text),))


def _range(item: tree.Range, field: str) -> Node:
    bounds = []
    if str(item.low) != "*":
        bounds.append(Pred(field, "gte" if item.include_low else "gt", (str(item.low),)))
    if str(item.high) != "*":
        bounds.append(Pred(field, "lte" if item.include_high else "lt", (str(item.high),)))
    return and_(*bounds) if bounds else Pred(field, "is_not_null", ("",))
