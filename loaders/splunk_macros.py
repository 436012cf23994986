"""SPL macro expansion for Splunk security_content searches.

Splunk expands search macros (`` `name` ``, `` `name(arg1, arg2)` ``) as plain text before it
parses a search, so this module does the same: each call is replaced by its definition with
`$arg$` placeholders filled in, recursively, with protection against cycles. A call that cannot
be expanded stays in the text as written; the SPL parser turns it into an `Unparsed` leaf named
after it, with the reason this module gives.

Inline comments (```` ```...``` ````) are dropped first: commented-out text is no logic.
Backticks inside double-quoted strings are literal text, not macro calls.

Macro docs: https://docs.splunk.com/Documentation/Splunk/latest/Knowledge/Definesearchmacros
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

MISSING = "missing macro"
CYCLE = "macro cycle"
ARITY = "macro argument count"
DEPTH = "macro nesting too deep"

_MAX_DEPTH = 20
# Runs a scan steps over whole: quoted strings, escapes, comments, macro calls, other text.
_SCAN = re.compile(r'"(?:[^"\\]|\\.)*"?|\\.?|```.*?(?:```|$)|`[^`]*`?|[^"\\`]+', re.DOTALL)
_CHUNKS = re.compile(r'"(?:[^"\\]|\\.)*"?|`[^`]*`?|\\.?|[()\[\]|,]|[^"`\\()\[\]|,]+', re.DOTALL)
_NAME = re.compile(r"\s*([\w.:-]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)


@dataclass(frozen=True)
class Macro:
    """One macro definition: its name, its argument names and its text."""

    name: str
    definition: str
    arguments: tuple[str, ...] = ()


# Macros the searches call that security_content does not define, because Splunk Enterprise
# Security ships them (`drop_dm_object_name`, from SA-Utils) or contentctl generates them (each
# detection's `<name>_filter`, created as `search *` for customers to tune).
BUILTIN_MACROS: dict[str, Macro] = {
    "drop_dm_object_name": Macro("drop_dm_object_name", "rename $object$.* as *", ("object",)),
}
FILTER_MACRO_DEFINITION = "search *"


@dataclass
class Expansion:
    """A search with its macros expanded, and the calls that could not be."""

    text: str
    used: list[str] = field(default_factory=list)
    unresolved: dict[str, str] = field(default_factory=dict)


def expand(text: str, macros: Mapping[str, Macro]) -> Expansion:
    """Expand every macro call of `text`, recursively; comments are dropped."""
    expansion = Expansion("")
    expansion.text = _expand(text, macros, (), expansion)
    return expansion


def _expand(text: str, macros: Mapping[str, Macro], stack: tuple[str, ...],
            expansion: Expansion) -> str:
    out: list[str] = []
    for kind, piece in scan(text):
        if kind == "comment":
            out.append(" ")
        elif kind == "macro":
            out.append(_expand_call(piece, macros, stack, expansion))
        else:
            out.append(piece)
    return "".join(out)


def scan(text: str) -> list[tuple[str, str]]:
    """Split text into ("text" | "comment" | "macro", piece) runs; quotes are respected."""
    pieces: list[tuple[str, str]] = []
    plain_start = 0
    for match in _SCAN.finditer(text):
        piece = match.group()
        kind = "comment" if piece.startswith("```") else "macro" if piece[0] == "`" else ""
        if kind:
            if match.start() > plain_start:
                pieces.append(("text", text[plain_start:match.start()]))
            pieces.append((kind, piece))
            plain_start = match.end()
    if plain_start < len(text):
        pieces.append(("text", text[plain_start:]))
    return pieces


def _expand_call(call: str, macros: Mapping[str, Macro], stack: tuple[str, ...],
                 expansion: Expansion) -> str:
    parsed = parse_call(call)
    if parsed is None:
        expansion.unresolved[call] = MISSING
        return call
    name, args = parsed
    macro = lookup_macro(name, macros)
    reason = _refusal(name, args, macro, stack)
    if reason:
        expansion.unresolved[call] = reason
        return call
    assert macro is not None
    expansion.used.append(name)
    body = substitute(macro, args)
    return _expand(body, macros, (*stack, name), expansion)


def _refusal(name: str, args: list[str], macro: Macro | None, stack: tuple[str, ...]) -> str:
    if macro is None:
        return MISSING
    if name in stack:
        return CYCLE
    if len(stack) >= _MAX_DEPTH:
        return DEPTH
    if len(args) != len(macro.arguments):
        return ARITY
    return ""


def lookup_macro(name: str, macros: Mapping[str, Macro]) -> Macro | None:
    """The repository's macro, else a built-in one, else the generated filter default."""
    if name in macros:
        return macros[name]
    if name in BUILTIN_MACROS:
        return BUILTIN_MACROS[name]
    if name.endswith("_filter"):
        return Macro(name, FILTER_MACRO_DEFINITION)
    return None


def parse_call(call: str) -> tuple[str, list[str]] | None:
    """`name(a, "b")` between backticks as (name, [args]); None when it is no call at all."""
    inner = call.strip("`")
    match = _NAME.match(inner)
    if not match:
        return None
    name, arg_text = match.group(1), match.group(2)
    if arg_text is None:
        return name, []
    return name, [arg.strip() for arg in split_top(arg_text, ",")]


def substitute(macro: Macro, args: list[str]) -> str:
    body = macro.definition
    for name, value in zip(macro.arguments, args, strict=True):
        body = body.replace(f"${name}$", value)
    return body


def split_top(text: str, separator: str) -> list[str]:
    """Split on `|` or `,` outside quotes, backticks, parentheses and brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for match in _CHUNKS.finditer(text):
        chunk = match.group()
        if chunk in ("(", "["):
            depth += 1
        elif chunk in (")", "]"):
            depth = max(depth - 1, 0)
        elif chunk == separator and depth == 0:
            parts.append(text[start:match.start()])
            start = match.end()
    parts.append(text[start:])
    return parts
