"""Typed option dataclasses: read field docstrings, build an instance from a dict field by field.

Shared by :class:`~torchrl_vd.train.config.TrainConfig` (``--set`` overrides) and the algorithm table
(``mixer_kwargs`` / ``loss_kwargs`` resolved into each algorithm's typed configs), so that a typo
anywhere gets the same error: the unknown name, close matches and the valid names.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import textwrap
import typing
from typing import Any


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each dataclass field (PEP 257 attribute docstrings), base classes first."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # no source (e.g. frozen app): fields stay undocumented
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def unknown_name_error(name: str, valid: list[str], where: str, noun: str = "option") -> ValueError:
    """``ValueError`` for a misspelt name: close matches first, then every valid name."""
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(sorted(valid)) if valid else f"(none: this part takes no {noun}s)"
    return ValueError(f"Unknown {where} {noun} {name!r}.{hint} Valid {where} {noun}s: {listed}.")


def build_options(cls: type, given: dict[str, Any] | None, where: str):
    """``cls(**given)`` with each name checked (close-match errors) and each value coerced to its field type."""
    given = dict(given or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in given.items():
        if key not in names:
            raise unknown_name_error(key, names, where)
        values[key] = coerce(f"{where}.{key}", value, hints[key])
    return cls(**values)


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` checked/converted to the type ``hint``; a ``ValueError`` naming the option if impossible.

    A union (``bool | Literal["running", "batch"]``, ``float | None``) takes the first member that accepts the
    value; tuples are coerced element by element (``tuple[Literal[...], ...]``).

    Examples:
        >>> from typing import Literal
        >>> coerce("x", "3", int), coerce("y", "batch", bool | Literal["running", "batch"]), coerce("z", [1], tuple[int, ...])
        (3, 'batch', (1,))
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or str(origin) == "types.UnionType":
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        for member in members:
            try:
                return coerce(name, value, member)
            except ValueError:
                continue
        raise ValueError(f"Option {name!r} expects {' or '.join(_describe(m) for m in members)}, got {value!r}.")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"Option {name!r} must be one of {list(args)}, got {value!r}.")
        return value
    if origin is tuple:
        seq = value if isinstance(value, (list, tuple)) else [value]
        return tuple(coerce(name, x, args[0]) for x in seq)
    if _fits(value, hint):
        return hint(value) if hint in (int, float, str) else value
    raise ValueError(f"Option {name!r} expects {_describe(hint)}, got {value!r}.")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` can stand for ``hint`` (ints for floats, integral floats for ints, never bools for numbers)."""
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        if isinstance(value, bool):
            return False
        try:
            return hint is float or float(value) == int(value)
        except (TypeError, ValueError):
            return False
    if hint is str:
        return isinstance(value, (str, int, float))
    if hint is dict or typing.get_origin(hint) is dict:
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + str(list(typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))
