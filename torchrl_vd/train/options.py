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


def unknown_name_error(name: str, valid: list[str], where: str) -> ValueError:
    """``ValueError`` for a misspelt option: close matches first, then every valid name."""
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(sorted(valid)) if valid else "(none: this part takes no options)"
    return ValueError(f"Unknown {where} option {name!r}.{hint} Valid {where} options: {listed}.")


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
    """``value`` checked/converted to the type ``hint``; a ``ValueError`` naming the option if impossible."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    if origin is typing.Union or str(origin) == "types.UnionType":
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            raise TypeError
        if hint in (int, float):
            if isinstance(value, bool):
                raise TypeError
            v = hint(value)
            if hint is int and float(value) != v:
                raise TypeError
            return v
        if hint is str:
            if not isinstance(value, (str, int, float)):
                raise TypeError
            return str(value)
        if origin is typing.Literal:
            if value not in args:
                raise ValueError(f"Option {name!r} must be one of {list(args)}, got {value!r}.")
            return value
        if origin is tuple:
            seq = value if isinstance(value, (list, tuple)) else [value]
            return tuple(args[0](x) for x in seq)
        if origin is dict or hint is dict:
            if not isinstance(value, dict):
                raise TypeError
            return value
    except (TypeError, ValueError) as err:
        if isinstance(err, ValueError) and str(err).startswith("Option "):
            raise
        raise ValueError(f"Option {name!r} expects {getattr(hint, '__name__', hint)}, got {value!r}.") from None
    return value
