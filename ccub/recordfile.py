"""Files one stage writes and another reads (`run.json`, ...), each a dataclass defined once and
used by both sides.

A file holds the record's fields and two more: `schema` (what it is) and `schema_version`. A
reader checks both and every field's type (`ccub.config.build_dataclass`), and refuses a version
it does not know with a message naming the file and the fix, so a file from a newer ccub is
never half understood.

Versions: a change a reader of the old version would misread (a field renamed, removed or given
another meaning or type) bumps VERSION, and older files are refused. A field added with a default
also bumps VERSION (an older ccub must refuse the new file, whose field it does not know), but
OLDEST keeps the older versions readable: their files lack only the new fields, which take their
defaults.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar, TypeVar

from ccub.config import ConfigError, build_dataclass
from ccub.files import atomic_write_text

T = TypeVar("T", bound="RecordFile")


class RecordError(ValueError):
    """A record file that cannot be used; the message names the file and the fix."""


class RecordFile:
    """Mixin for a dataclass stored as one JSON file: set SCHEMA, VERSION and FIX (what to do when
    the file cannot be used, e.g. "rerun `ccub finetune`")."""

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int]
    FIX: ClassVar[str]
    # Files this record was written as before records carried a schema: read as version 1.
    UNVERSIONED_IS_V1: ClassVar[bool] = False
    # The oldest version still read (None: only VERSION). Every field added since has a default,
    # which a file of an older version takes.
    OLDEST: ClassVar[int | None] = None
    # The names of the two fields; a format older than this module keeps its own.
    SCHEMA_KEYS: ClassVar[tuple[str, str]] = ("schema", "schema_version")

    def problems(self) -> list[str]:
        """What is inconsistent in a record whose every field has the right type; [] when nothing."""
        return []

    def write(self, path: Path) -> Path:
        schema, version = self.SCHEMA_KEYS
        data = {schema: self.SCHEMA, version: self.VERSION, **dataclasses.asdict(self)}
        atomic_write_text(Path(path), json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return Path(path)

    @classmethod
    def read(cls: type[T], path: Path) -> T:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordError(f"{path}: not found; {cls.FIX}") from None
        except (OSError, ValueError, RecursionError) as exc:  # json raises RecursionError on deep nesting
            raise RecordError(f"{path}: unreadable ({type(exc).__name__}); {cls.FIX}") from exc
        if not isinstance(data, dict):
            raise RecordError(f"{path}: not a {cls.SCHEMA} record; {cls.FIX}")
        schema, version_key = cls.SCHEMA_KEYS
        if cls.UNVERSIONED_IS_V1 and schema not in data and version_key not in data:
            data = {**data, schema: cls.SCHEMA, version_key: 1}  # written before records said so
        if data.get(schema) != cls.SCHEMA:
            raise RecordError(f"{path}: not a {cls.SCHEMA} record; {cls.FIX}")
        version = data.get(version_key)
        oldest = cls.VERSION if cls.OLDEST is None else cls.OLDEST
        if isinstance(version, bool) or not isinstance(version, int) or not oldest <= version <= cls.VERSION:
            reads = f"version {cls.VERSION}" if oldest == cls.VERSION else f"versions {oldest} to {cls.VERSION}"
            raise RecordError(f"{path}: {cls.SCHEMA} version {version!r}, but this ccub reads {reads}; "
                              f"use the ccub that wrote it, or {cls.FIX}")
        fields = {k: v for k, v in data.items() if k not in cls.SCHEMA_KEYS}
        try:
            record = build_dataclass(cls, fields, str(path))
        except ConfigError as exc:
            raise RecordError(f"{exc}; {cls.FIX}") from exc
        wrong = record.problems()
        if wrong:
            raise RecordError(f"{path}: {'; '.join(wrong)}; {cls.FIX}")
        return record
