"""The rule model shared by every loader: condition trees, predicate rows and RuleRecord.

A loader turns a rule's logic into a tree of `And`, `Or`, `Not`, `Pred` and `Unparsed`
nodes. `flatten` turns any tree into predicate rows the same way for every vendor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OPERATORS = frozenset({
    "eq", "in", "contains", "starts_with", "ends_with", "wildcard", "regex_match", "match",
    "cidr", "gt", "gte", "lt", "lte", "is_not_null", "keyword",
})

PARSE_STATUSES = ("full", "partial", "none", "no_query")


@dataclass(frozen=True)
class Pred:
    """One comparison: `field op values`. `negated` marks a negative operator such as `!=`.

    `computed` marks a column the rule computes itself (an `eval`, `extend` or lookup output):
    it keeps the rule's name and never normalises to a canonical field.
    """

    field: str
    op: str
    values: tuple[str, ...]
    negated: bool = False
    computed: bool = False

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}")


@dataclass(frozen=True)
class Unparsed:
    """Logic a parser could not understand, kept with the reason."""

    text: str
    reason: str


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = And | Or | Not | Pred | Unparsed


def and_(*children: Node) -> Node:
    """An AND of the children, flattening nested ANDs; a single child stands alone."""
    return _join(And, children)


def or_(*children: Node) -> Node:
    """An OR of the children, flattening nested ORs; a single child stands alone."""
    return _join(Or, children)


def _join(kind: type[And] | type[Or], children: tuple[Node, ...]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


@dataclass(frozen=True)
class PredicateRow:
    """One row of a rule's predicate table, as defined in docs/schema.md."""

    field: str
    op: str
    value: str
    negated: bool
    exclusion: bool
    canonical_field: str = ""
    computed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "canonical_field": self.canonical_field,
            "op": self.op,
            "value": self.value,
            "negated": self.negated,
            "exclusion": self.exclusion,
        }


def flatten(tree: Node | None) -> list[PredicateRow]:
    """Predicate rows of a condition tree: a set, in first-seen order.

    A row is negated under an odd number of NOTs or for a negative operator. Everything inside
    a NOT reached from the root through ANDs only is one filter, so each of its rows is an
    exclusion; so is a negative-operator row reached through ANDs only.
    """
    rows: dict[PredicateRow, None] = {}
    if tree is not None:
        _walk(tree, negated=False, and_path=True, in_filter=False, rows=rows)
    return list(rows)


def _walk(node: Node, negated: bool, and_path: bool, in_filter: bool,
          rows: dict[PredicateRow, None]) -> None:
    match node:
        case Pred():
            row_negated = negated != node.negated
            exclusion = in_filter or (and_path and row_negated)
            for value in node.values:
                row = PredicateRow(node.field, node.op, value, row_negated, exclusion,
                                   computed=node.computed)
                rows[row] = None
        case Not():
            _walk(node.child, not negated, and_path=False, in_filter=in_filter or and_path,
                  rows=rows)
        case And():
            for child in node.children:
                _walk(child, negated, and_path, in_filter, rows)
        case Or():
            for child in node.children:
                _walk(child, negated, and_path=False, in_filter=in_filter, rows=rows)
        case Unparsed():
            pass


def unparsed_leaves(tree: Node | None) -> list[Unparsed]:
    """Every Unparsed leaf of a tree, in order."""
    match tree:
        case Unparsed():
            return [tree]
        case Not():
            return unparsed_leaves(tree.child)
        case And() | Or():
            return [leaf for child in tree.children for leaf in unparsed_leaves(child)]
        case _:
            return []


def has_predicates(tree: Node | None) -> bool:
    match tree:
        case Pred():
            return True
        case Not():
            return has_predicates(tree.child)
        case And() | Or():
            return any(has_predicates(child) for child in tree.children)
        case _:
            return False


def tree_data(tree: Node | None) -> Any:
    """A condition tree as plain JSON-able data, one single-key object per node:
    `{"and": [...]}`, `{"or": [...]}`, `{"not": ...}`,
    `{"pred": {"field", "op", "values", "negated", "computed"}}`,
    `{"unparsed": {"text", "reason"}}`; no tree is None."""
    match tree:
        case None:
            return None
        case And():
            return {"and": [tree_data(child) for child in tree.children]}
        case Or():
            return {"or": [tree_data(child) for child in tree.children]}
        case Not():
            return {"not": tree_data(tree.child)}
        case Pred():
            return {"pred": {"field": tree.field, "op": tree.op, "values": list(tree.values),
                             "negated": tree.negated, "computed": tree.computed}}
        case Unparsed():
            return {"unparsed": {"text": tree.text, "reason": tree.reason}}
    raise TypeError(f"not a condition node: {tree!r}")


def tree_from_data(data: Any) -> Node | None:
    """The condition tree `tree_data` encoded."""
    if data is None:
        return None
    [(kind, body)] = data.items()
    match kind:
        case "and":
            return And(tuple(tree_from_data(child) for child in body))
        case "or":
            return Or(tuple(tree_from_data(child) for child in body))
        case "not":
            return Not(tree_from_data(body))
        case "pred":
            return Pred(body["field"], body["op"], tuple(body["values"]), body["negated"],
                        body["computed"])
        case "unparsed":
            return Unparsed(body["text"], body["reason"])
    raise ValueError(f"not an encoded condition node: {kind!r}")


@dataclass(frozen=True)
class Problem:
    """Something a loader could not fully read in a rule; kept on the record, never raised."""

    kind: str
    message: str
    line: int | None = None
    column: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "line": self.line,
                "column": self.column}


@dataclass
class RuleRecord:
    """One detection rule, whatever its vendor, as loaders hand it to the rest of kb."""

    vendor: str
    native_id: str
    title: str
    path: str
    language: str
    status: str = ""
    deprecated: bool = False
    severity: str = ""
    platforms: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    condition: Node | None = None
    parse_status: str = "full"
    problems: list[Problem] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    predicates: list[PredicateRow] = field(default_factory=list)
    source_name: str = ""
    # The rule as written: its file's text, or the loader's own part of a file holding several.
    text: str = ""

    @property
    def uid(self) -> str:
        return f"{self.vendor}:{self.native_id}"

    def finish(self) -> RuleRecord:
        """Flatten the condition and set the parse status from what is left unparsed."""
        self.predicates = flatten(self.condition)
        if self.parse_status == "no_query":
            return self
        leaves = unparsed_leaves(self.condition)
        for leaf in leaves:
            self.problems.append(Problem("unparsed", f"{leaf.reason}: {leaf.text[:200]}"))
        if self.condition is None or (leaves and not has_predicates(self.condition)):
            self.parse_status = "none"
        elif leaves:
            self.parse_status = "partial"
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "vendor": self.vendor,
            "native_id": self.native_id,
            "title": self.title,
            "language": self.language,
            "techniques": list(self.techniques),
            "event_types": list(self.event_types),
            "parse_status": self.parse_status,
            "problems": [p.as_dict() for p in self.problems],
            "predicates": [p.as_dict() for p in self.predicates],
        }


def broken_record(vendor: str, path: str, language: str, kind: str, message: str,
                  line: int | None = None, column: int | None = None) -> RuleRecord:
    """A record for a file that could not be read as a rule at all: kept, marked and counted."""
    record = RuleRecord(vendor=vendor, native_id=path, title=path, path=path, language=language,
                        parse_status="none")
    record.problems.append(Problem(kind, message, line, column))
    return record
