"""A commented TOML template of settings dataclasses: each section with its defaults and the
comments written above each field in the source, so the template and the code never disagree."""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

_FIELD = re.compile(r"(\w+)\s*:")


def field_comments(cls: type) -> dict[str, list[str]]:
    """field name -> the comment lines written just above it in `cls`'s source."""
    found: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        text = line.strip()
        if text.startswith("#"):
            pending.append(text.lstrip("#").strip())
            continue
        match = _FIELD.match(text)
        if match and line.startswith("    ") and not line.startswith("     "):
            found[match.group(1)] = pending
        pending = []
    return found


def _summary(cls: type) -> list[str]:
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(f"{cls.__name__}("):  # the signature dataclasses writes when there is no docstring
        return []
    return [line for line in doc.split("\n\n")[0].splitlines()]


def _value(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def section(name: str, settings: Any, intro: list[str] = ()) -> str:
    """`[name]` with every field of the dataclass instance `settings`, each under its comments."""
    cls = type(settings)
    comments = field_comments(cls)
    lines = [f"# {text}" if text else "#" for text in [*intro, *_summary(cls)]]
    lines.append(f"[{name}]")
    for f in dataclasses.fields(cls):
        lines += [f"# {text}" if text else "#" for text in comments.get(f.name, [])]
        lines.append(f"{f.name} = {_value(getattr(settings, f.name))}")
    return "\n".join(lines) + "\n"
