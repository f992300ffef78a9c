"""The shape of untrusted JSON, checked before any value is used.

`check_shape` compares the fields a reader uses with the shape it expects (the bounds of the
whole document, depth and text length, are checked when it is parsed: `ccub.rows`). A shape is

- a Python type: `str`, `int` (not true/false), `bool`;
- `[shape]`: a list whose every element has that shape;
- `(shape, shape, ...)`: any one of them;
- `{"field": shape, "field?": shape}`: an object; a field whose name ends in "?" may be missing
  or null; fields the shape does not name are allowed (and only bounded).

Messages name the field by its path (`answers[3].ranking`; list positions are counted from 1,
as people count answers), what it holds and what it must hold.
"""

from __future__ import annotations

from typing import Any

_NAMES = {str: ("a text", "texts"), int: ("an integer", "integers"), bool: ("true or false", "true/false values"),
          dict: ("an object", "objects")}


class ShapeError(ValueError):
    """A value of the wrong type or size; the message names its path."""


def check_shape(value: Any, shape: Any, path: str = "") -> None:
    """Raise ShapeError naming the first field of `value` that does not have `shape`."""
    if isinstance(shape, dict):
        _require(value, dict, path, shape)
        for name, inner in shape.items():
            key = name.removesuffix("?")
            if value.get(key) is None:
                if name.endswith("?"):
                    continue
                raise ShapeError(f"field {_join(path, key)} is {'null' if key in value else 'missing'}; it must "
                                 f"be {expected(inner)}")
            check_shape(value[key], inner, _join(path, key))
    elif isinstance(shape, list):
        _require(value, list, path, shape)
        for n, inner in enumerate(value, start=1):
            check_shape(inner, shape[0], f"{path}[{n}]")
    elif isinstance(shape, tuple):
        if not any(_fits(value, option, path) for option in shape):
            raise ShapeError(f"{_name(path)} is {describe(value)}; it must be {expected(shape)}")
    else:
        _require(value, shape, path, shape)


def describe(value: Any) -> str:
    """What a JSON value is, for a message: `a text ("yes")`, `an integer (7)`, `a list`, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"a text ({quoted(value)})"
    if isinstance(value, int | float):
        return f"a number ({str(value)[:40]})"
    return "a list" if isinstance(value, list) else "an object"


def quoted(text: str, limit: int = 40) -> str:
    """`text` for a message: quoted, control characters escaped (repr), cut to `limit` characters."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def expected(shape: Any) -> str:
    if isinstance(shape, tuple):
        return " or ".join(expected(s) for s in shape)
    if isinstance(shape, list):
        inner = shape[0]
        return f"a list of {_NAMES[dict if isinstance(inner, dict) else inner][1]}"
    return _NAMES[dict if isinstance(shape, dict) else shape][0]


def _fits(value: Any, shape: Any, path: str) -> bool:
    try:
        check_shape(value, shape, path)
    except ShapeError:
        return False
    return True


def _require(value: Any, kind: type, path: str, shape: Any) -> None:
    # true/false are ints in Python, never in a JSON reader's eyes.
    fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not fits:
        raise ShapeError(f"{_name(path)} is {describe(value)}; it must be {expected(shape)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _name(path: str) -> str:
    return f"field {path}" if path else "the file"
