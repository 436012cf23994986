"""The error tree: every error kb raises on purpose is a KbError."""

from __future__ import annotations


class KbError(Exception):
    """Base of every error kb raises on purpose."""


class UserError(KbError):
    """A mistake the user can fix: a missing file, an unknown technique, a bad option."""


class SourceError(UserError):
    """A rule source or bundle that cannot be read at all."""


class ParseError(KbError):
    """A rule file that cannot be parsed; carries the path and, where known, line and column."""

    def __init__(self, message: str, path: str = "", line: int | None = None,
                 column: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        super().__init__(self.location_text())

    def location_text(self) -> str:
        place = ":".join(str(p) for p in (self.path, self.line, self.column) if p not in ("", None))
        return f"{place}: {self.message}" if place else self.message


class SchemaError(KbError):
    """The graph does not have the shape the code expects."""


class EngineError(KbError):
    """A graph engine that cannot be reached or refuses a query."""
