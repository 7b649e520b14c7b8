"""A safe evaluator for arithmetic expressions typed by a person, such as ``3*x**2 - 4*x + 5``.

The command line uses it to turn text into a chainrule graph. The text is parsed with
Python's :mod:`ast` module into a syntax tree, the tree is checked against a short
**whitelist**, and the evaluator walks the tree itself, building :class:`Value` nodes.
Nothing the user types is ever compiled to code or run by Python: there is no
``eval``, ``exec`` or ``compile`` of user text here.

The language (a small part of Python's expression syntax, with Python's precedence):

- numbers: ``2``, ``0.5``, ``1e-3`` (not booleans, complex numbers or strings);
- variables: a letter followed by letters and digits (``x``, ``w1``; no underscores);
- ``+ - * / **`` between expressions, ``-x`` and ``+x``, parentheses;
- the functions ``exp log tanh relu abs sigmoid softplus sin cos tan asin acos atan
  sinh cosh asinh acosh atanh sqrt log2 log10 log1p expm1 exp2 square reciprocal erf
  gelu silu``: every built-in op of one input that is a :class:`Value` method of that
  name (:data:`FUNCTIONS`, made from the rule table), each called with one argument.

Anything else -- attributes, indexing, other calls, keyword arguments, lambdas,
comprehensions, comparisons, conditionals, strings, f-strings, ``:=`` -- raises
:class:`ExpressionError` naming the part that is not allowed. Arithmetic errors
(``log(-1)``, ``1/0``, ``9**9**9``) are raised by the engine, as subclasses of
:class:`ChainruleError`.
"""

from __future__ import annotations

import ast
import inspect
import math
import numbers
import re
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType

from chainrule.core import BUILT_IN_OPS, RULES, Value
from chainrule.errors import ChainruleError

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "ExpressionError",
    "evaluate",
    "parse",
    "parse_assignments",
    "variable_names",
]

#: The longest expression (in characters) accepted.
MAX_LENGTH = 10_000

#: The deepest nesting accepted. ``-(-(-x))`` is 4 levels and ``tanh(tanh(x))`` 3, while
#: ``a + b + c`` is 2 however long the chain: the left operand of a binary operator sits
#: at the operator's own level, so a flat sum of any number of terms is not "deep".
MAX_DEPTH = 100


def _one_input_functions() -> dict[str, Callable[[Value], Value]]:
    """Every built-in op of one input that is a :class:`Value` method of the same name
    (``tanh``, ``exp``, ``log``, ...), in the rule table's order: an op added to the
    engine is a function of the language with nothing to change here."""
    functions: dict[str, Callable[[Value], Value]] = {}
    for name in RULES:
        method = vars(Value).get(name) if name in BUILT_IN_OPS else None  # no getattr here
        if callable(method) and _takes_only_self(method):
            functions[name] = method
    return functions


def _takes_only_self(method: Callable[..., object]) -> bool:
    params = list(inspect.signature(method).parameters.values())
    return len(params) == 1 or all(p.default is not p.empty for p in params[1:])


#: The functions an expression may call, each with exactly one argument.
FUNCTIONS: Mapping[str, Callable[[Value], Value]] = MappingProxyType(_one_input_functions())

_ALLOWED_FUNCTIONS = ", ".join(FUNCTIONS)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*", re.ASCII)
_SHOWN = 60  # the longest piece of the user's text quoted in a message

_BINARY_OPS: dict[type[ast.operator], Callable[[Value, Value], Value]] = {
    ast.Add: Value.__add__,
    ast.Sub: Value.__sub__,
    ast.Mult: Value.__mul__,
    ast.Div: Value.__truediv__,
}

_OPERATOR_TEXT: dict[type[ast.AST], str] = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Not: "not",
    ast.Invert: "~",
}

# What to call each disallowed kind of syntax in an error message.
_DESCRIPTIONS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Slice: "slicing",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.IfExp: "conditional expression",
    ast.Compare: "comparison",
    ast.BoolOp: "`and` / `or`",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.NamedExpr: "assignment expression (`:=`)",
    ast.Starred: "`*` unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


class ExpressionError(ChainruleError, ValueError):
    """An expression that is malformed, not allowed, or missing a variable's value."""


def _quote(text: str) -> str:
    """``text`` in backticks for a message, shortened if long."""
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 3] + "..."
    return f"`{text}`"


def _check_text(text: object) -> str:
    """Reject non-strings, over-long text and characters no expression needs."""
    if not isinstance(text, str):
        raise TypeError(f"expression: expected a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long: {len(text)} characters (the limit is {MAX_LENGTH})"
        )
    for column, ch in enumerate(text, start=1):
        if not (" " <= ch <= "~" or ch == "\t"):
            raise ExpressionError(
                f"unexpected character {ch!r} at column {column}: expressions are one line "
                "of ASCII letters, digits, spaces and + - * / ** ( )"
            )
    return text


def parse(text: str) -> ast.Expression:
    """Parse ``text`` and check it against the whitelist; return the syntax tree.

    Raises :class:`ExpressionError` for invalid syntax (naming the column), for text
    longer than :data:`MAX_LENGTH` or nested deeper than :data:`MAX_DEPTH`, and for any
    syntax outside the language described in this module's docstring (naming it).
    """
    _check_text(text)
    stripped = text.lstrip(" \t")
    indent = len(text) - len(stripped)
    if not stripped.strip():
        raise ExpressionError("expression is empty")
    try:
        with warnings.catch_warnings():
            # The compiler warns about things such as bad escapes in strings; the
            # whitelist below refuses all of those with a clear message instead.
            warnings.simplefilter("ignore")
            tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        reason = exc.msg if exc.msg and exc.msg != "invalid syntax" else ""
        offset = exc.offset or 0
        if not 1 <= offset <= len(stripped):  # Python's way of saying "at the end"
            offset = len(stripped.rstrip()) + 1
            reason = reason or "the expression ends too early"
        column = offset + indent
        detail = f": {reason}" if reason else ""
        raise ExpressionError(f"invalid syntax at column {column}{detail}") from None
    except (RecursionError, MemoryError):
        # Python's own parser and AST builder recurse, also along a flat chain
        # (about 3,000 terms of `1+1+...` with the default recursion limit).
        raise ExpressionError(
            "expression is nested too deeply or has too many terms in a row for Python's "
            "parser; split it into smaller parts"
        ) from None
    _validate(tree, stripped)
    return tree


def _validate(tree: ast.Expression, text: str) -> None:
    """Walk the tree without recursion; raise on the first node not on the whitelist.

    Nodes are visited in the order they are written, so the message names the
    leftmost offending part. Depth is counted as :data:`MAX_DEPTH` describes: a binary
    operator's left operand is at the operator's level, every other child one deeper.
    """
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels); "
                "split it into smaller parts"
            )
        children = _check_node(node, text)
        if isinstance(node, ast.BinOp):  # a + b + c: the chain runs down the left operands
            stack += [(node.right, depth + 1), (node.left, depth)]
        else:
            stack.extend((child, depth + 1) for child in reversed(children))


def _segment(node: ast.AST, text: str) -> str:
    """The user's own text for ``node`` (column offsets are in UTF-8 bytes; text is ASCII)."""
    segment = ast.get_source_segment(text, node)
    return segment if segment is not None else type(node).__name__


def _check_node(node: ast.AST, text: str) -> list[ast.AST]:
    """Check one node; return the children to check next."""
    if isinstance(node, ast.Constant):
        _check_number(node, text)
        return []
    if isinstance(node, ast.Name):
        _check_name(node.id)
        return []
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY_OPS and not isinstance(node.op, ast.Pow):
            symbol = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
            raise ExpressionError(
                f"operator `{symbol}` is not allowed (in {_quote(_segment(node, text))}); "
                "use + - * / **"
            )
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            symbol = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
            raise ExpressionError(
                f"operator `{symbol}` is not allowed (in {_quote(_segment(node, text))})"
            )
        return [node.operand]
    if isinstance(node, ast.Call):
        return _check_call(node, text)
    description = _DESCRIPTIONS.get(type(node), "this syntax")
    raise ExpressionError(f"{description} {_quote(_segment(node, text))} is not allowed")


def _check_number(node: ast.Constant, text: str) -> None:
    """Numbers are ints and floats that fit in a float; not bools, complex or strings."""
    value = node.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            if math.isfinite(value):
                return  # the common case: no need to find the text (linear in its length)
        except OverflowError:  # an int too large for a float
            pass
    shown = _quote(_segment(node, text))
    if isinstance(value, bool):
        raise ExpressionError(f"booleans are not allowed: {shown}")
    if isinstance(value, complex):
        raise ExpressionError(f"complex numbers are not allowed: {shown}")
    if isinstance(value, (str, bytes)):
        raise ExpressionError(f"strings are not allowed: {shown}")
    if not isinstance(value, (int, float)):
        raise ExpressionError(f"{shown} is not allowed")
    raise ExpressionError(f"the number {shown} is too large for a float")


def _check_name(name: str) -> None:
    """Variable names: a letter, then letters and digits; no underscores; not a function."""
    if "_" in name:
        raise ExpressionError(f"names may not contain underscores: {_quote(name)}")
    if not _NAME.fullmatch(name):
        raise ExpressionError(
            f"invalid variable name {_quote(name)}: use a letter followed by letters and digits"
        )
    if name in FUNCTIONS:
        raise ExpressionError(
            f"{_quote(name)} is a function, not a variable (call it like {name}(x))"
        )


def _check_call(node: ast.Call, text: str) -> list[ast.AST]:
    func = node.func
    if not isinstance(func, ast.Name):
        kind = "attribute access" if isinstance(func, ast.Attribute) else "calling"
        raise ExpressionError(
            f"{kind} {_quote(_segment(func, text))} is not allowed; "
            f"the only functions are {_ALLOWED_FUNCTIONS}"
        )
    name = func.id
    if name not in FUNCTIONS:
        raise ExpressionError(f"unknown function {_quote(name)}; allowed: {_ALLOWED_FUNCTIONS}")
    if node.keywords:
        raise ExpressionError(f"keyword arguments are not allowed: {_quote(_segment(node, text))}")
    if len(node.args) != 1:
        raise ExpressionError(
            f"{name}() takes exactly one argument, got {len(node.args)}: "
            f"{_quote(_segment(node, text))}"
        )
    return list(node.args)


def _walk_names(tree: ast.Expression) -> list[str]:
    """Variable names in order of first appearance (the tree must be validated)."""
    names: dict[str, None] = {}
    stack: list[ast.AST] = [tree.body]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            names.setdefault(node.id, None)
        elif isinstance(node, ast.BinOp):
            stack += [node.right, node.left]
        elif isinstance(node, ast.UnaryOp):
            stack.append(node.operand)
        elif isinstance(node, ast.Call):
            stack += reversed(node.args)  # not node.func: function names are not variables
    return list(names)


def variable_names(text: str) -> list[str]:
    """The variables ``text`` uses, each once, in order of first appearance.

    >>> variable_names("y * x + tanh(x)")
    ['y', 'x']

    Raises :class:`ExpressionError` as :func:`parse` does.
    """
    return _walk_names(parse(text))


def _literal_number(node: ast.AST) -> float | None:
    """The value of a number written directly (``2``, ``-1``, ``+0.5``), else None."""
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return sign * float(node.value)  # finite: checked by parse()
    return None


def evaluate(text: str, variables: Mapping[str, float]) -> tuple[Value, dict[str, Value]]:
    """Evaluate ``text`` with chainrule Values; return ``(output, leaves)``.

    ``leaves`` maps each variable the expression uses to its leaf Value, labelled with
    its name, so that after ``output.backward()`` the gradient ``d output / d x`` is
    ``leaves["x"].grad`` and drawings show the names. A variable used twice is one
    leaf. Numbers become unlabelled constant leaves (``-2`` is one leaf, not a
    negation). An exponent without variables (``2``, ``-1``, ``(1+1)``, ``1/2``) is
    worked out first, so ``x ** (1+1)`` is the engine's ``x ** k`` node with ``k = 2``,
    exactly like ``x ** 2``, and works for negative ``x``. Entries of ``variables``
    that the expression does not use are ignored.

    Raises :class:`ExpressionError` for text :func:`parse` rejects and for variables
    without a value; arithmetic errors (``log(-1)``, ``1/0``, overflow) are raised by
    the engine as :class:`ChainruleError` subclasses.
    """
    tree = parse(text)
    names = _walk_names(tree)
    missing = [n for n in names if n not in variables]
    if missing:
        shown = ", ".join(f"`{n}`" for n in missing)
        example = ",".join(f"{n}=..." for n in missing)
        pronoun = "it" if len(missing) == 1 else "them"
        raise ExpressionError(f"no value for {shown}; give {pronoun} with --at {example}")
    leaves: dict[str, Value] = {}
    for name in names:
        value = variables[name]
        if not isinstance(value, numbers.Real):
            raise TypeError(f"the value of `{name}` must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ExpressionError(f"the value of `{name}` must be a finite number, got {value}")
        leaves[name] = Value(value, label=name)
    return _evaluate(tree.body, leaves), leaves


def _evaluate(node: ast.AST, leaves: dict[str, Value]) -> Value:
    """Evaluate a validated node.

    A chain of binary operators (``a + b + c + ...``) is walked down its left operands
    with a loop; the recursion goes only into right operands, unary operands and
    function arguments, so its depth is bounded by :data:`MAX_DEPTH`.
    """
    number = _literal_number(node)
    if number is not None:
        return Value(number)
    if isinstance(node, ast.Name):
        return leaves[node.id]
    if isinstance(node, ast.BinOp):
        chain: list[ast.BinOp] = []
        left: ast.AST = node
        while isinstance(left, ast.BinOp):
            chain.append(left)
            left = left.left
        value = _evaluate(left, leaves)
        for op in reversed(chain):
            value = _binary(op, value, leaves)
        return value
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, leaves)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return FUNCTIONS[node.func.id](_evaluate(node.args[0], leaves))
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")  # unreachable after parse


def _binary(node: ast.BinOp, left: Value, leaves: dict[str, Value]) -> Value:
    """``left <op> node.right``; an exponent without variables becomes a plain number."""
    if isinstance(node.op, ast.Pow):
        exponent = _constant(node.right)
        if exponent is not None:
            return left**exponent  # the engine's x ** k node
        return left ** _evaluate(node.right, leaves)
    return _BINARY_OPS[type(node.op)](left, _evaluate(node.right, leaves))


def _constant(node: ast.AST) -> float | None:
    """The number a variable-free expression works out to (``2``, ``1+1``), else None.

    It is computed with Values, so ``1/0`` or ``exp(1000)`` raise the engine's errors,
    and the result has the same rounding as the same text anywhere else.
    """
    number = _literal_number(node)
    if number is not None:
        return number
    stack = [node]
    while stack:
        part = stack.pop()
        if isinstance(part, ast.Name):
            return None
        if isinstance(part, ast.BinOp):
            stack += [part.left, part.right]
        elif isinstance(part, ast.UnaryOp):
            stack.append(part.operand)
        elif isinstance(part, ast.Call):
            stack += part.args
    return _evaluate(node, {}).data


def parse_assignments(text: str) -> dict[str, float]:
    """Parse variable values written like ``x=3,y=-2.5`` (spaces allowed around parts).

    Returns ``{"x": 3.0, "y": -2.5}``; an empty or blank ``text`` gives ``{}``. Raises
    :class:`ExpressionError` for an item without ``=``, a bad name (names follow the
    expression rules), a value that is not a finite number, or a name given twice.
    """
    _check_text(text)
    values: dict[str, float] = {}
    if not text.strip():
        return values
    for item in text.split(","):
        if "=" not in item:
            if not item.strip():
                raise ExpressionError(f"empty item in {_quote(text)}; write x=3,y=-2")
            raise ExpressionError(f"missing `=` in {_quote(item.strip())}; write it like x=3")
        name, _, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not name:
            raise ExpressionError(f"missing variable name in {_quote(item.strip())}")
        _check_name(name)
        try:
            number = float(raw)
        except ValueError:
            raise ExpressionError(
                f"the value of `{name}` must be a number, got {_quote(raw)}"
            ) from None
        if not math.isfinite(number):
            raise ExpressionError(f"the value of `{name}` must be a finite number, got {raw}")
        if name in values:
            raise ExpressionError(f"`{name}` is given twice")
        values[name] = number
    return values
