"""A rule's condition tree as its page shows it: stages down to predicates, kept small.

The stages are the parts of the top-level AND (a tree with another root is one stage): each
must hold for the rule to fire. A stage under a NOT, or a negative comparison at the top, is
an exclusion, as `kb.model.flatten` marks its rows. The view is plain dicts for the template,
cut to a budget of nodes, values and characters so that no rule page grows large.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kb.model import And, Node, Not, Or, Pred, Unparsed, tree_from_data

TREE_NODES = 300  # nodes shown per rule page; the rest are counted
PRED_VALUES = 12  # values shown per predicate
UNPARSED_CHARS = 400  # characters of unparsed text shown
TEXT_CHARS = 20_000  # characters of the rule's text shown

View = dict[str, Any]


@dataclass
class ConditionView:
    """The stages of a rule's condition, and how much of the tree they leave out."""

    stages: list[View] = field(default_factory=list)
    hidden_nodes: int = 0
    hidden_values: int = 0


def condition_view(condition: str | None) -> ConditionView:
    """The view of a `Rule.condition` (the tree as JSON); no stages when there is no tree."""
    tree = tree_from_data(json.loads(condition)) if condition else None
    view = ConditionView()
    if tree is None:
        return view
    budget = _Budget(TREE_NODES)
    for part in tree.children if isinstance(tree, And) else (tree,):
        node = _node(part.child if isinstance(part, Not) else part, budget)
        if node:
            view.stages.append({"kind": _stage_kind(part), "node": node})
    view.hidden_nodes, view.hidden_values = budget.hidden_nodes, budget.hidden_values
    return view


def _stage_kind(part: Node) -> str:
    match part:
        case Not():
            return "exclusion"
        case Pred(negated=True):
            return "exclusion"
        case Unparsed():
            return "unparsed"
        case _:
            return "match"


@dataclass
class _Budget:
    nodes: int
    hidden_nodes: int = 0
    hidden_values: int = 0

    def take(self, node: Node) -> bool:
        """Spend one node; when none is left, count the node and all below it as hidden."""
        if self.nodes > 0:
            self.nodes -= 1
            return True
        self.hidden_nodes += _size(node)
        return False


def _size(node: Node) -> int:
    match node:
        case And() | Or():
            return 1 + sum(_size(child) for child in node.children)
        case Not():
            return 1 + _size(node.child)
        case _:
            return 1


def _node(node: Node, budget: _Budget) -> View | None:
    """A node's view, or None when the budget is spent (its children that do not fit are
    left out, and counted)."""
    if not budget.take(node):
        return None
    match node:
        case And() | Or():
            children = [_node(child, budget) for child in node.children]
            return {"kind": "and" if isinstance(node, And) else "or",
                    "children": [child for child in children if child]}
        case Not():
            child = _node(node.child, budget)
            return {"kind": "not", "children": [child] if child else []}
        case Pred():
            budget.hidden_values += max(0, len(node.values) - PRED_VALUES)
            return {"kind": "pred", "field": node.field, "op": node.op,
                    "negated": node.negated, "computed": node.computed,
                    "values": list(node.values[:PRED_VALUES]),
                    "more": max(0, len(node.values) - PRED_VALUES), "children": []}
        case Unparsed():
            return {"kind": "unparsed", "reason": node.reason,
                    "text": _cut(node.text, UNPARSED_CHARS), "children": []}
    raise TypeError(f"not a condition node: {node!r}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def shown_text(text: str | None) -> str:
    """The rule's text as its page shows it: whole, or its first `TEXT_CHARS` characters cut
    at a line end where one is near."""
    text = text or ""
    if len(text) <= TEXT_CHARS:
        return text
    end = text.rfind("\n", 0, TEXT_CHARS)
    return text[:end + 1] if end > TEXT_CHARS // 2 else text[:TEXT_CHARS]
