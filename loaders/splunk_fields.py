"""Where a field named late in an SPL pipeline comes from.

Each pipeline stage pushes a `Scope` saying what it does to field names: `rename a as b` (also
with wildcards, as `drop_dm_object_name(Processes)` expands to `rename Processes.* as *`), an
`eval x=y` alias, columns it computes (`eval`, lookup outputs, `rex` groups) or aggregates
(`stats count as c`), and whether only its own columns leave it (`stats`, `tstats`). A filter
later in the pipeline asks `Env.resolve` for the source field it really tests.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cache

logger = logging.getLogger(__name__)

SOURCE = "source"
COMPUTED = "computed"
AGGREGATE = "aggregate"
KEEP = "keep"


@dataclass(frozen=True)
class Resolved:
    """A field as a filter sees it: its source name, its kind and whether a stage defined it."""

    field: str
    kind: str = SOURCE
    known: bool = False
    closed: bool = False  # unknown because a stage before lets only its own columns through


@dataclass(frozen=True)
class Binding:
    """What a stage says about one column: kept, an alias of `target`, computed or aggregated."""

    kind: str
    target: str = ""


@dataclass
class Scope:
    """What one pipeline stage does to field names."""

    names: dict[str, Binding] = field(default_factory=dict)
    renames: list[tuple[str, str]] = field(default_factory=list)
    closed: bool = False
    sub: Env | None = None


class Env:
    """The scopes of the stages read so far, latest last."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    def push(self, scope: Scope) -> None:
        self.scopes.append(scope)

    def resolve(self, name: str) -> Resolved:
        return self._resolve(name, len(self.scopes) - 1, known=False)

    def _resolve(self, name: str, index: int, known: bool) -> Resolved:
        while index >= 0:
            scope = self.scopes[index]
            binding = scope.names.get(name)
            if binding is not None:
                return self._bound(name, binding, index)
            renamed = self._renamed(name, scope, index)
            if renamed is not None:
                return renamed
            if scope.sub is not None:
                inner = scope.sub.resolve(name)
                if inner.known:
                    return inner
            if scope.closed:
                return Resolved(name, SOURCE, known=False, closed=True)
            index -= 1
        return Resolved(name, SOURCE, known)

    def _bound(self, name: str, binding: Binding, index: int) -> Resolved:
        if binding.kind in (COMPUTED, AGGREGATE):
            return Resolved(name, binding.kind, known=True)
        target = binding.target or name
        return self._resolve(target, index - 1, known=True)

    def _renamed(self, name: str, scope: Scope, index: int) -> Resolved | None:
        for source, target in reversed(scope.renames):
            match = _pattern(target).fullmatch(name)
            if match is None:
                continue
            candidate = _fill(source, match.groups())
            if "*" not in target:
                return self._resolve(candidate, index - 1, known=True)
            renamed = self._resolve(candidate, index - 1, known=False)
            unchanged = self._resolve(name, index - 1, known=False)
            if renamed.known or not (unchanged.known or renamed.closed):
                # TODO(#5): with no closed stage before a wildcard rename we cannot tell whether
                # a field existed under its old name, so the rename is assumed to apply.
                return renamed
            return unchanged
        return None


@cache
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile("(.*?)".join(re.escape(part) for part in glob.split("*")))


def _fill(glob: str, groups: tuple[str, ...]) -> str:
    parts = glob.split("*")
    out = [parts[0]]
    for index, part in enumerate(parts[1:]):
        out.append(groups[index] if index < len(groups) else "")
        out.append(part)
    return "".join(out)
