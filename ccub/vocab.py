"""Resolve what people write (codes, names, adjectives, aliases) to vocabulary keys."""

from __future__ import annotations

import re
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


def filename_prefix(file_name: str) -> str | None:
    """The code prefix of names like `ARCH_3.jpg`, upper-cased, else None."""
    stem = file_name.rsplit("/", 1)[-1]
    match = _PREFIX.match(stem)
    return match.group(1).upper() if match else None
