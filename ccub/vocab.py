"""Resolve what people write (codes, names, adjectives, aliases) to vocabulary keys."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccub.config import Config

_PREFIX = re.compile(r"^([A-Za-z]+)[_-]\d")


def _norm(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.strip().lower())


class Vocabulary:
    """Lookup tables built once per run from the config's cultures and categories."""

    def __init__(self, cfg: Config):
        self.cultures = cfg.cultures
        self.categories = cfg.categories
        self._culture: dict[str, str] = {}
        for slug, c in cfg.cultures.items():
            for name in (slug, c.name, c.adjective, c.iso3, c.iso2, *c.aliases):
                self._culture.setdefault(_norm(name), slug)
        self._category: dict[str, str] = {}
        for code, c in cfg.categories.items():
            for name in (code, c.name, *c.aliases):
                self._category.setdefault(_norm(name), code)

    def culture(self, text: str | None) -> str | None:
        """Slug for a culture given by slug, ISO alpha-3/alpha-2, name or adjective."""
        return self._culture.get(_norm(text)) if text else None

    def category(self, text: str | None) -> str | None:
        """CCUB code for a category given by code, name or alias."""
        return self._category.get(_norm(text)) if text else None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """" (did you mean X?)" naming the closest of `choices` to a mistyped `value`, else ""."""
    choices = list(choices)
    by_norm = {_norm(c): c for c in choices}
    close = difflib.get_close_matches(_norm(value), list(by_norm), n=1, cutoff=0.6)
    return f" (did you mean {by_norm[close[0]]}?)" if close else ""


def unknown(kind: str, value: str, choices: Iterable[str], fix: str) -> str:
    """The message for a value that names nothing in `choices`: the value, the closest choice,
    every choice, and how to add one."""
    choices = sorted(choices)
    return f"unknown {kind} '{value}'{did_you_mean(value, choices)}; known: {', '.join(choices)}; {fix}"


def check_flags(vocab: Vocabulary, culture: str | None, category: str | None) -> list[str]:
    """A message per --culture / --category value that the vocabulary does not know."""
    problems = []
    if culture and vocab.culture(culture) is None:
        problems.append(unknown("culture", culture, vocab.cultures, "declare a new one in ccub.toml as "
                                f"[cultures.{_norm(culture).replace(' ', '-')}] (see `ccub config --write`)"))
    if category and vocab.category(category) is None:
        problems.append(unknown("category", category, vocab.categories, "declare a new one in ccub.toml as "
                                f"[categories.{culture_code(category)}]"))
    return problems


def culture_code(text: str) -> str:
    return re.sub(r"\W+", "_", text.strip()).upper()


def filename_prefix(file_name: str) -> str | None:
    """The code prefix of names like `ARCH_3.jpg`, upper-cased, else None."""
    stem = file_name.rsplit("/", 1)[-1]
    match = _PREFIX.match(stem)
    return match.group(1).upper() if match else None
