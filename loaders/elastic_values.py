"""Values shared by the Elastic query languages: wildcard patterns folded into operators.

Every language hands over a pattern as parts, each a piece of literal text or a wildcard,
so that an escaped `*` stays literal. DESIGN.md's conventions: `*x*`, `x*` and `*x` fold to
`contains`, `starts_with` and `ends_with`; any other wildcard keeps the whole pattern under
`wildcard`; a lone `*` is `is_not_null`; equality values of one comparison are `in` when
there are several of them and `eq` when there is one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from kb.model import Node, Pred, or_

logger = logging.getLogger(__name__)

Part = tuple[str, bool]  # (text, is_wildcard)

_WILDCARDS = re.compile(r"([*?])")
_DSL_PARTS = re.compile(r"\\([\\*?])|([*?])|([^\\*?]+|\\)")
_ESCAPED_PARTS = re.compile(r"\\(.)|([*?])|([^\\*?]+|\\$)", re.DOTALL)


def pattern_parts(pattern: str, wildcards: str = "*?") -> list[Part]:
    """Parts of a pattern with no escapes of its own (EQL and ES|QL strings come unescaped)."""
    parts: list[Part] = []
    for piece in _WILDCARDS.split(pattern):
        if piece:
            parts.append((piece, piece in wildcards and len(piece) == 1))
    return parts


def dsl_wildcard_parts(pattern: str) -> list[Part]:
    """Parts of an Elasticsearch `wildcard` query value.

    Only `\\\\`, `\\*` and `\\?` are read as escapes; any other backslash is literal, as rule
    authors writing `C:\\Program Files\\*` mean it.
    """
    return _parts(_DSL_PARTS, pattern)


def _parts(scanner: re.Pattern[str], pattern: str) -> list[Part]:
    parts: list[Part] = []
    for match in scanner.finditer(pattern):
        escaped, wildcard, text = match.groups()
        if wildcard:
            parts.append((wildcard, True))
        else:
            parts.append((escaped or text, False))
    return parts


def escaped_pattern_parts(pattern: str) -> list[Part]:
    """Parts of a pattern where a backslash escapes the next character (ES|QL `like`)."""
    return _parts(_ESCAPED_PARTS, pattern)


def fold(parts: Sequence[Part]) -> tuple[str, str]:
    """The (op, value) a pattern means."""
    if parts and all(wild and text == "*" for text, wild in parts):
        return "is_not_null", ""
    start, end = 0, len(parts)
    while start < end and parts[start] == ("*", True):
        start += 1
    while end > start and parts[end - 1] == ("*", True):
        end -= 1
    middle = parts[start:end]
    if any(wild for _, wild in middle):
        # TODO(#4): a literal `*` or `?` inside a `wildcard` value reads as a wildcard; rare.
        return "wildcard", "".join(text for text, _ in parts)
    literal = "".join(text for text, _ in middle)
    leading, trailing = start > 0, end < len(parts)
    if leading and trailing:
        return "contains", literal
    if leading:
        return "ends_with", literal
    if trailing:
        return "starts_with", literal
    return "eq", literal


def grouped(field: str, folded: Iterable[tuple[str, str]], computed: bool = False) -> Node:
    """An OR over the values of one comparison, one Pred per operator.

    Equality values become `in` when there are several of them, `eq` when there is one.
    """
    groups: dict[str, list[str]] = {}
    for op, value in folded:
        values = groups.setdefault(op, [])
        if value not in values:
            values.append(value)
    if len(groups.get("eq", ())) > 1:
        groups = {("in" if op == "eq" else op): values for op, values in groups.items()}
    preds = [Pred(field, op, tuple(values), computed=computed) for op, values in groups.items()]
    return or_(*preds)


def values_pred(field: str, values: Sequence[str], computed: bool = False) -> Pred:
    """Equality with one or several literal values: `eq` or `in`."""
    unique = tuple(dict.fromkeys(values))
    return Pred(field, "in" if len(unique) > 1 else "eq", unique, computed=computed)


def is_null(field: str, computed: bool = False) -> Pred:
    return Pred(field, "is_not_null", ("",), negated=True, computed=computed)


def not_null(field: str, computed: bool = False) -> Pred:
    return Pred(field, "is_not_null", ("",), computed=computed)
