"""Checking every model a command needs at once, before any heavy work.

A `Need` is one model (or weights file, or package) a command will load: its role ("base
model"), its name as the user gave it, and, when it cannot be had here, the problem (the same
text the single-model error gives: role, name, fix), the one shell command that fetches it on a
machine with network access, and the folder to copy from there. `require_all` raises one
`ModelUnavailable` naming every missing model with one combined download list, so an offline
user learns in one try what to fetch. `ccub doctor` prints the same needs as a table.

Nothing here imports torch, open_clip or huggingface_hub at module level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ccub.models.common import ModelUnavailable


@dataclass(frozen=True)
class Need:
    """One model a command needs; `problem` is None when it is present (or can be downloaded now)."""

    role: str
    name: str
    problem: str | None = None
    command: str | None = None  # fetches it on a machine with network access
    copy: str | None = None  # what to copy from that machine afterwards
    note: str = ""  # how it was found ("cache", "folder", "built on first use")

    @property
    def ok(self) -> bool:
        return self.problem is None


def download_list(needs: Iterable[Need]) -> list[str]:
    """The commands (each once, in order) that fetch every missing need, then what to copy."""
    missing = [n for n in needs if not n.ok]
    commands = list(dict.fromkeys(n.command for n in missing if n.command))
    copies = list(dict.fromkeys(n.copy for n in missing if n.copy))
    lines = []
    if commands:
        lines.append("on a machine with network access run:")
        lines += [f"    {command}" for command in commands]
    if copies:
        lines.append(f"then copy {', '.join(copies)} to the same place here (or point HF_HOME, TORCH_HOME, "
                     f"CCUB_CACHE at the copies)")
    manual = [n for n in missing if not n.command]
    if manual:
        lines.append("fix by hand (no download helps): " + "; ".join(f"{n.role} {n.name}" for n in manual))
    return lines


def unavailable(needs: Iterable[Need]) -> ModelUnavailable | None:
    """One error naming every missing need (its own message when only one is), or None."""
    missing = [n for n in needs if not n.ok]
    if not missing:
        return None
    if len(missing) == 1:
        return ModelUnavailable(missing[0].problem)
    lines = [f"{len(missing)} models are missing:"]
    lines += [f"  - {n.problem}" for n in missing]
    lines += download_list(missing)
    return ModelUnavailable("\n".join(lines))


def require_all(items: Iterable[Need | tuple[Any, ...] | None]) -> None:
    """Raise one `ModelUnavailable` naming every missing model of `items`, or return.

    An item is a `Need` (from `check_pretrained`, `check_clip`, ...), None (nothing needed), or a
    tuple ``(ref_or_name, role[, index_file])`` checked by `ccub.models.pretrained.check_pretrained`
    (a hub model counts as available when the hub can be reached now).
    """
    from ccub.models.pretrained import check_pretrained

    needs = [item if isinstance(item, Need) else check_pretrained(*item) for item in items if item is not None]
    error = unavailable(needs)
    if error is not None:
        raise error
