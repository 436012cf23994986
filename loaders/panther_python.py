"""Panther Python rule logic, read with `ast` only: the file is never imported, exec'd or run.

`rule_condition(text)` reads the `rule(event)` function of a Panther detection into a condition
tree. It follows what Panther rules are made of: comparisons on `event.get("x")`,
`deep_get(event, "a", "b")` (field `a.b`), `event.deep_get(...)`, `event.udm("x")`,
`event["x"]`, chained `.get()`s and local names bound to them; `in` over literal or module-level
constant collections; `startswith`/`endswith`; case wrappers (`lower()`, `upper()`, `str()`)
dropped; `re.match/search/fullmatch` and compiled module-level patterns; `any()`/`all()` over a
constant list. Statements are followed in order: a guard `if cond: return False` before the
final return reads `NOT cond AND ...`, `if cond: return True` reads `cond OR ...`.

What the reader cannot follow (calls to helper functions, loops that return, a branch that
returns on some paths only) becomes an `Unparsed` leaf naming it.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from typing import Any

from kb.model import And, Node, Not, Or, Pred, Unparsed, and_, or_

logger = logging.getLogger(__name__)

TRUE: Node = And(())  # the rule fires for every event reaching this point
FALSE: Node = Or(())  # the rule never fires from this point

_CASE_METHODS = frozenset({"lower", "upper", "casefold", "strip", "lstrip", "rstrip"})
_CASE_FUNCTIONS = frozenset({"str"})
_DEEP_FUNCTIONS = frozenset({"deep_get", "deep_walk"})
_EVENT_METHODS = frozenset({"get", "deep_get", "deep_walk", "udm"})
_REGEX_FUNCTIONS = frozenset({"match", "search", "fullmatch"})
_ORDER = {ast.Gt: "gt", ast.GtE: "gte", ast.Lt: "lt", ast.LtE: "lte"}
_SWAPPED = {ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Lt: ast.Gt, ast.LtE: ast.GtE}


def rule_condition(text: str, function: str = "rule") -> Node:
    """The condition tree of a Panther Python detection's `rule(event)` function."""
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None)
        return Unparsed("", f"not valid Python (line {line}): {getattr(error, 'msg', error)}")
    definition = next((node for node in module.body if isinstance(node, ast.FunctionDef)
                       and node.name == function), None)
    if definition is None or not definition.args.args:
        return Unparsed("", f"no {function}(event) function")
    reader = _Reader(text, _module_constants(module), definition.args.args[0].arg)
    return reader.block(definition.body)


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """An event field, `a.b` for `deep_get(event, "a", "b")`."""

    path: str


@dataclass(frozen=True)
class _Const:
    """Literal values, one for a scalar, several for a list, set or tuple."""

    values: tuple[Any, ...]
    collection: bool = False


@dataclass(frozen=True)
class _Pattern:
    """A compiled regular expression (`re.compile(r"...")`)."""

    pattern: str


@dataclass(frozen=True)
class _Condition:
    """A local name bound to a boolean expression."""

    node: Node


@dataclass(frozen=True)
class _Opaque:
    """A value the reader cannot follow (a helper's result, something computed)."""

    text: str


def _module_constants(module: ast.Module) -> dict[str, Any]:
    """Module-level names bound once to literals, literal collections or compiled patterns."""
    constants: dict[str, Any] = {}
    assigned: dict[str, int] = {}
    for node in module.body:
        targets, value = _assignment(node)
        for target in targets:
            assigned[target] = assigned.get(target, 0) + 1
            constant = _literal(value, constants)
            if constant is not None:
                constants[target] = constant
    return {name: value for name, value in constants.items() if assigned[name] == 1}


def _assignment(node: ast.stmt) -> tuple[list[str], ast.expr | None]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)], node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id], node.value
    return [], None


def _literal(node: ast.expr | None, constants: dict[str, Any]) -> Any:
    """A literal value read from the syntax tree (never evaluated), or None."""
    match node:
        case ast.Constant(value=value) if isinstance(value, str | int | float | bool):
            return _Const((value,))
        case ast.List(elts=elts) | ast.Tuple(elts=elts) | ast.Set(elts=elts):
            items = [_literal(elt, constants) for elt in elts]
            if all(isinstance(item, _Const) and not item.collection for item in items):
                return _Const(tuple(item.values[0] for item in items), collection=True)
        case ast.Call(func=ast.Name(id="set" | "frozenset" | "list" | "tuple"), args=[arg]):
            return _literal(arg, constants)
        case ast.Call(func=ast.Attribute(value=ast.Name(id="re"), attr="compile"), args=args):
            pattern = _literal(args[0], constants) if args else None
            if isinstance(pattern, _Const) and isinstance(pattern.values[0], str):
                return _Pattern(pattern.values[0])
        case ast.Name(id=name) if isinstance(constants.get(name), _Const | _Pattern):
            return constants[name]
        case ast.BinOp(left=left, op=ast.BitOr() | ast.Add(), right=right):
            first, second = _literal(left, constants), _literal(right, constants)
            if isinstance(first, _Const) and isinstance(second, _Const) and first.collection:
                return _Const(tuple(dict.fromkeys(first.values + second.values)), True)
    return None


def _text(value: Any) -> str:
    """A literal as a row value: numbers as written, booleans in lower case."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# --- the reader ----------------------------------------------------------------------------


class _Reader:
    """Reads one function body, statement by statement, into a condition tree."""

    def __init__(self, text: str, constants: dict[str, Any], event: str) -> None:
        self._source = text
        self._constants = constants
        self._event = event
        self._locals: dict[str, Any] = {}
        self._budget = 64  # `if`s followed before giving up: each may read what follows twice

    def _segment(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self._source, node) or ast.dump(node)[:200]
        return " ".join(text.split())

    # Statements -------------------------------------------------------------------------

    def block(self, statements: list[ast.stmt]) -> Node:
        """The condition under which this block returns a true value."""
        for index, statement in enumerate(statements):
            rest = statements[index + 1:]
            match statement:
                case ast.Return(value=value):
                    return self.condition(value) if value is not None else FALSE
                case ast.If():
                    outcome = self._if(statement, rest)
                    if outcome is not None:
                        return outcome
                case ast.Assign() | ast.AnnAssign() | ast.AugAssign():
                    self._assign(statement)
                case ast.For() | ast.AsyncFor() | ast.While() | ast.With() | ast.Try():
                    if _returns(statement):
                        loop = Unparsed(self._segment(statement), "a loop or block that returns")
                        return any_of(loop, self.block(rest))
                    self._forget(statement)
                case ast.Raise():
                    return FALSE
        return FALSE

    def _if(self, statement: ast.If, rest: list[ast.stmt]) -> Node | None:
        """The outcome of an `if` that returns, or None to go on with the next statement.

        A branch that does not always return goes on with the statements after the `if`.
        """
        if not _returns(statement):
            self._forget(statement)
            return None
        self._budget -= 1
        if self._budget < 0:
            return Unparsed(self._segment(statement), "too many branches to follow")
        test = self.condition(statement.test)
        saved = dict(self._locals)
        then = self.block(_continued(statement.body, rest))
        self._locals = dict(saved)
        otherwise = self.block(_continued(statement.orelse, rest))
        self._locals = saved
        if then == TRUE:
            return any_of(test, otherwise)
        if otherwise == FALSE:
            return all_of(test, then)
        return any_of(all_of(test, then), all_of(negate(test), otherwise))

    def _assign(self, statement: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name):
            self._locals[statement.targets[0].id] = self._bound_value(statement.value)
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) \
                and statement.value is not None:
            self._locals[statement.target.id] = self._bound_value(statement.value)
        else:
            self._forget(statement)

    def _bound_value(self, node: ast.expr) -> Any:
        value = self.value(node)
        if not isinstance(value, _Opaque):
            return value
        condition = self.condition(node)
        return _Condition(condition) if not isinstance(condition, Unparsed) else value

    def _forget(self, statement: ast.stmt) -> None:
        """Names a statement assigns in ways the reader does not follow become opaque."""
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self._locals[node.id] = _Opaque(node.id)

    # Values -----------------------------------------------------------------------------

    def value(self, node: ast.expr) -> Any:
        """What an expression stands for: a field, a literal, a pattern or something opaque."""
        match node:
            case ast.Name(id=name) if name in self._locals:
                return self._locals[name]
            case ast.Name(id=name) if name in self._constants:
                return self._constants[name]
            case ast.Constant(value=None):
                return _Const((None,))
            case ast.Constant() | ast.List() | ast.Tuple() | ast.Set():
                literal = _literal(node, self._constants)
                if literal is not None:
                    return literal
            case ast.Subscript(value=base, slice=key):
                return self._subscript(base, key, node)
            case ast.Call():
                return self._call_value(node)
            case ast.BoolOp(op=ast.Or(), values=[first, *_]):
                value = self.value(first)  # `event.get("x") or {}` is still the field
                if isinstance(value, _Field):
                    return value
        return _Opaque(self._segment(node))

    def _subscript(self, base: ast.expr, key: ast.expr, node: ast.expr) -> Any:
        parent = self._field_base(base)
        index = _literal(key, self._constants)
        if parent is not None and isinstance(index, _Const) and not index.collection:
            return _Field(_join(parent, index.values[0]))
        return _Opaque(self._segment(node))

    def _field_base(self, node: ast.expr) -> str | None:
        """The path a value starts from: "" for the event itself, a field's path, or None."""
        if isinstance(node, ast.Name) and node.id == self._event:
            return ""
        value = self.value(node)
        return value.path if isinstance(value, _Field) else None

    def _call_value(self, node: ast.Call) -> Any:
        func = node.func
        keys = [_literal(arg, self._constants) for arg in node.args]
        if isinstance(func, ast.Attribute):
            if func.attr in _CASE_METHODS and not node.args:
                inner = self.value(func.value)
                return inner if isinstance(inner, _Field) else _Opaque(self._segment(node))
            base = self._field_base(func.value)
            if base is not None and func.attr in _EVENT_METHODS:
                path = _path(base, keys[:1] if func.attr == "get" else keys)
                if path is not None:
                    return _Field(path)
        if isinstance(func, ast.Name) and func.id in _DEEP_FUNCTIONS and node.args:
            base = self._field_base(node.args[0])
            path = _path(base, keys[1:]) if base is not None else None
            if path is not None:
                return _Field(path)
        if isinstance(func, ast.Name) and func.id in _CASE_FUNCTIONS and len(node.args) == 1:
            inner = self.value(node.args[0])
            if isinstance(inner, _Field):
                return inner
        return _Opaque(self._segment(node))

    # Conditions -------------------------------------------------------------------------

    def condition(self, node: ast.expr) -> Node:
        """The condition under which an expression is true."""
        match node:
            case ast.BoolOp(op=ast.And(), values=values):
                return all_of(*(self.condition(value) for value in values))
            case ast.BoolOp(op=ast.Or(), values=values):
                return any_of(*(self.condition(value) for value in values))
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return negate(self.condition(operand))
            case ast.Compare():
                return self._compare(node)
            case ast.Constant(value=value):
                return TRUE if value else FALSE
            case ast.Call():
                return self._call_condition(node)
        return self._truthy(node)

    def _truthy(self, node: ast.expr) -> Node:
        value = self.value(node)
        match value:
            case _Field():
                return Pred(value.path, "is_not_null", ("",))
            case _Condition():
                return value.node
            case _Const():
                return TRUE if any(value.values) else FALSE
        return Unparsed(self._segment(node), "a value the reader cannot follow")

    def _compare(self, node: ast.Compare) -> Node:
        parts: list[Node] = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(self._comparison(left, op, right, node))
            left = right
        return all_of(*parts)

    def _comparison(self, left: ast.expr, op: ast.cmpop, right: ast.expr,
                    node: ast.Compare) -> Node:
        first, second = self.value(left), self.value(right)
        if isinstance(first, _Const) and isinstance(second, _Field) \
                and not isinstance(op, ast.In | ast.NotIn):
            first, second = second, first
            op = _SWAPPED.get(type(op), type(op))()
        if isinstance(first, _Condition) and isinstance(second, _Const):
            truth = bool(second.values[0])
            equal = isinstance(op, ast.Eq | ast.Is)
            return first.node if truth == equal else negate(first.node)
        if isinstance(first, _Field) and isinstance(second, _Field):
            return TRUE  # a field-to-field comparison: no row
        return self._field_comparison(first, op, second, node)

    def _field_comparison(self, first: Any, op: ast.cmpop, second: Any,
                          node: ast.Compare) -> Node:
        text = self._segment(node)
        match first, op, second:
            case _Field(), ast.Eq() | ast.NotEq() | ast.Is() | ast.IsNot(), _Const():
                negated = isinstance(op, ast.NotEq | ast.IsNot)
                return _equality(first.path, second, negated, text)
            case _Field(), ast.In() | ast.NotIn(), _Const(collection=True):
                negated = isinstance(op, ast.NotIn)
                op_name = "in" if len(second.values) > 1 else "eq"
                return Pred(first.path, op_name, tuple(map(_text, second.values)), negated)
            case _Const(), ast.In() | ast.NotIn(), _Field():
                negated = isinstance(op, ast.NotIn)
                return Pred(second.path, "contains", tuple(map(_text, first.values)), negated)
            case _Field(), ast.Gt() | ast.GtE() | ast.Lt() | ast.LtE(), _Const():
                return Pred(first.path, _ORDER[type(op)], (_text(second.values[0]),))
        return Unparsed(text, "a comparison the reader cannot follow")

    def _call_condition(self, node: ast.Call) -> Node:
        func = node.func
        text = self._segment(node)
        if isinstance(func, ast.Attribute) and func.attr in ("startswith", "endswith"):
            return self._affix(func, node, text)
        if isinstance(func, ast.Attribute) and func.attr in _REGEX_FUNCTIONS:
            return self._regex(func, node, text)
        if isinstance(func, ast.Name) and func.id in ("any", "all") and len(node.args) == 1:
            return self._any_all(func.id, node.args[0], text)
        if isinstance(func, ast.Name) and func.id == "bool" and len(node.args) == 1:
            return self.condition(node.args[0])
        value = self.value(node)
        if isinstance(value, _Field):
            return Pred(value.path, "is_not_null", ("",))
        name = self._segment(func)
        return Unparsed(text, f"a call to {name}() the reader cannot follow")

    def _affix(self, func: ast.Attribute, node: ast.Call, text: str) -> Node:
        subject = self.value(func.value)
        values = self.value(node.args[0]) if node.args else None
        if isinstance(subject, _Field) and isinstance(values, _Const):
            op = "starts_with" if func.attr == "startswith" else "ends_with"
            return Pred(subject.path, op, tuple(map(_text, values.values)))
        return Unparsed(text, f"{func.attr}() on a value the reader cannot follow")

    def _regex(self, func: ast.Attribute, node: ast.Call, text: str) -> Node:
        owner = self.value(func.value)
        if isinstance(func.value, ast.Name) and func.value.id == "re" and len(node.args) >= 2:
            pattern, subject = self.value(node.args[0]), self.value(node.args[1])
        elif isinstance(owner, _Pattern) and node.args:
            pattern, subject = owner, self.value(node.args[0])
        else:
            return Unparsed(text, f"a call to {self._segment(func)}() the reader cannot follow")
        regex = pattern.pattern if isinstance(pattern, _Pattern) else (
            pattern.values[0] if isinstance(pattern, _Const) and not pattern.collection
            else None)
        if isinstance(subject, _Field) and isinstance(regex, str):
            return Pred(subject.path, "regex_match", (regex,))
        return Unparsed(text, "a regular expression on a value the reader cannot follow")

    def _any_all(self, kind: str, argument: ast.expr, text: str) -> Node:
        """`any(x in cmd for x in NAMES)`: the element test once per constant value."""
        if not isinstance(argument, ast.GeneratorExp | ast.ListComp) \
                or len(argument.generators) != 1:
            return Unparsed(text, f"{kind}() over something other than a constant list")
        loop = argument.generators[0]
        values = self.value(loop.iter)
        if loop.ifs or not isinstance(loop.target, ast.Name) \
                or not isinstance(values, _Const) or not values.collection:
            return Unparsed(text, f"{kind}() over something other than a constant list")
        saved = self._locals.get(loop.target.id)
        nodes = []
        for value in values.values:
            self._locals[loop.target.id] = _Const((value,))
            nodes.append(self.condition(argument.elt))
        if saved is None:
            del self._locals[loop.target.id]
        else:
            self._locals[loop.target.id] = saved
        return _merge_values(all_of(*nodes) if kind == "all" else any_of(*nodes))


def _path(base: str, keys: list[Any]) -> str | None:
    """`base` followed by literal keys, or None when a key is not a literal string or number."""
    path = base
    for key in keys:
        if not isinstance(key, _Const) or key.collection:
            return None
        path = _join(path, key.values[0])
    return path if keys else None


def _join(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _equality(field: str, value: _Const, negated: bool, text: str) -> Node:
    """`== x`: eq; `== None`/`== ""`: the field is null (a negated is_not_null)."""
    if value.collection:
        return Unparsed(text, "an equality with a whole list")
    literal = value.values[0]
    if literal is None or literal == "":
        return Pred(field, "is_not_null", ("",), not negated)
    return Pred(field, "eq", (_text(literal),), negated)


def _continued(branch: list[ast.stmt], rest: list[ast.stmt]) -> list[ast.stmt]:
    return branch if _terminates(branch) else [*branch, *rest]


def _returns(statement: ast.stmt) -> bool:
    return any(isinstance(node, ast.Return) for node in ast.walk(statement))


def _terminates(statements: list[ast.stmt]) -> bool:
    """Whether every path through a block ends in a return or a raise."""
    if not statements:
        return False
    last = statements[-1]
    if isinstance(last, ast.Return | ast.Raise):
        return True
    if isinstance(last, ast.If):
        return _terminates(last.body) and _terminates(last.orelse)
    return False


# --- tree helpers with constant folding ----------------------------------------------------


def all_of(*nodes: Node) -> Node:
    """AND of the nodes, folding the TRUE and FALSE constants."""
    return FALSE if FALSE in nodes else and_(*nodes)


def any_of(*nodes: Node) -> Node:
    """OR of the nodes, folding constants and merging values compared on one field."""
    return TRUE if TRUE in nodes else _merge_values(or_(*nodes))



def negate(node: Node) -> Node:
    """NOT of a node: a comparison flips, NOT NOT cancels out, TRUE and FALSE swap."""
    match node:
        case Pred():
            return Pred(node.field, node.op, node.values, not node.negated, node.computed)
        case Not():
            return node.child
    if node == TRUE:
        return FALSE
    if node == FALSE:
        return TRUE
    return Not(node)


def _merge_values(node: Node) -> Node:
    """Within an OR, comparisons with one operator on one field become one, with every value."""
    if not isinstance(node, Or):
        return node
    merged: dict[tuple[str, str, bool], list[str]] = {}
    order: list[Node | tuple[str, str, bool]] = []
    for child in node.children:
        if isinstance(child, Pred) and not child.negated and child.op != "is_not_null":
            op = "in" if child.op == "eq" else child.op
            key = (child.field, op, child.computed)
            if key not in merged:
                merged[key] = []
                order.append(key)
            merged[key].extend(child.values)
        else:
            order.append(child)
    children = [_merged_pred(item, merged[item]) if isinstance(item, tuple) else item
                for item in order]
    return children[0] if len(children) == 1 else Or(tuple(children))


def _merged_pred(key: tuple[str, str, bool], values: list[str]) -> Pred:
    field, op, computed = key
    unique = tuple(dict.fromkeys(values))
    if op == "in" and len(unique) == 1:
        op = "eq"
    return Pred(field, op, unique, computed=computed)
