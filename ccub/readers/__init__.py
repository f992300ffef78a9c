"""Read a submissions folder, whatever its layout, into records.

One walk of the tree finds every metadata file, manifest, `submission.toml` and image. Each
layout has its reader (imagefolder, manifest, tree); a folder may mix them. Files a reader
claims are not read again by the next, and images nobody claims are reported.
"""

from __future__ import annotations

import os
import posixpath
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ccub.imaging.analyze import IMAGE_SUFFIXES
from ccub.readers.fields import ALIASES, header_of
from ccub.records import Finding, Record
from ccub.vocab import Vocabulary, filename_prefix

METADATA_NAMES = ("metadata.jsonl", "metadata.csv")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
SUBMISSION_TOML = "submission.toml"
# Fields a submission.toml or a flag may set for every record under it.
DEFAULTABLE = ("culture", "category", "license", "creator", "contributor", "consent",
               "language", "caption_source")


class RootError(ValueError):
    """The submissions folder itself cannot be read."""


@dataclass
class Tree:
    """Everything one walk of the root found, with paths relative to it (posix)."""

    root: Path
    real: Path
    files: list[str] = field(default_factory=list)
    dirs: set[str] = field(default_factory=set)

    def images(self) -> list[str]:
        return [f for f in self.files if PurePosixPath(f).suffix.lower() in IMAGE_SUFFIXES]

    def resolve(self, base: str, value: str) -> tuple[str | None, str | None]:
        """(path relative to the root, problem) for a path written in a file under `base`."""
        if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute():
            return None, f"'{value}' is an absolute path; write it relative to its metadata file"
        joined = posixpath.normpath(posixpath.join(base, value.replace("\\", "/")))
        if joined == ".." or joined.startswith("../"):
            return None, f"'{value}' points outside the submissions folder"
        problem = self.escapes(joined)
        return (None, problem) if problem else (joined, None)

    def escapes(self, rel: str) -> str | None:
        full = self.root / rel
        try:
            real = full.resolve()
        except (OSError, RuntimeError):
            return f"'{rel}' cannot be resolved (symlink loop?)"
        if not real.is_relative_to(self.real):
            return f"'{rel}' is a symlink pointing outside the submissions folder"
        return None


@dataclass
class ReadResult:
    records: list[Record]
    findings: list[Finding]
    layouts: dict[str, int]  # layout name -> number of records it produced


def walk(root: Path) -> Tree:
    if not root.is_dir():
        raise RootError(f"{root}: not a folder (give the folder that holds the submissions)")
    tree = Tree(root=root, real=root.resolve())
    try:
        os.listdir(root)
    except OSError as exc:
        raise RootError(f"{root}: cannot be read ({exc.strerror})") from exc
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(current).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        tree.dirs.add(rel_dir)
        for name in sorted(filenames):
            if not name.startswith("."):
                tree.files.append(posixpath.join(rel_dir, name) if rel_dir else name)
    return tree


class Defaults:
    """Values that apply to every record below a folder: submission.toml files and flags."""

    def __init__(self, tree: Tree, flags: dict[str, str], findings: list[Finding]):
        self.flags = {k: v for k, v in flags.items() if v}
        self.tables: dict[str, dict[str, Any]] = {}
        for rel in tree.files:
            if posixpath.basename(rel) == SUBMISSION_TOML:
                table = self._load(tree.root / rel, rel, findings)
                if table:
                    self.tables[posixpath.dirname(rel)] = table

    @staticmethod
    def _load(path: Path, rel: str, findings: list[Finding]) -> dict[str, Any]:
        try:
            table = tomllib.loads(path.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            findings.append(Finding("metadata.malformed", f"not valid TOML ({exc}); its "
                                    "defaults were not applied", file=rel))
            return {}
        unknown = sorted(set(table) - set(DEFAULTABLE))
        if unknown:
            findings.append(Finding("metadata.malformed", f"unknown key(s) {', '.join(unknown)} "
                                    f"ignored; allowed: {', '.join(DEFAULTABLE)}", file=rel))
        return {k: str(v) for k, v in table.items() if k in DEFAULTABLE}

    def fill(self, record: Record, vocab: Vocabulary) -> None:
        """Fill what the row left empty: nearest submission.toml, then flags, then the path."""
        where = posixpath.dirname(record.image or record.origin.split(":")[0])
        chain = [where]
        while where:
            where = posixpath.dirname(where)
            chain.append(where)
        for name in DEFAULTABLE:
            if getattr(record, name):
                continue
            for folder in chain:
                if name in self.tables.get(folder, {}):
                    value = self.tables[folder][name]
                    record.set(name, _resolve(vocab, name, value),
                               f"{posixpath.join(folder, SUBMISSION_TOML)}")
                    break
            else:
                if name in self.flags:
                    record.set(name, _resolve(vocab, name, self.flags[name]), f"flag --{name}")
        _infer_from_path(record, vocab)


def _resolve(vocab: Vocabulary, name: str, value: str) -> str:
    if name == "culture":
        return vocab.culture(value) or value
    if name == "category":
        return vocab.category(value) or value
    return value


def _infer_from_path(record: Record, vocab: Vocabulary) -> None:
    # A row whose image was refused still names its folder through the metadata file.
    path = record.image or record.origin.rsplit(":", 1)[0]
    parts = PurePosixPath(path).parts[:-1]
    if not record.culture:
        for part in reversed(parts):
            if slug := vocab.culture(part):
                record.set("culture", slug, f"path component '{part}'")
                break
    if not record.category:
        for part in reversed(parts):
            if code := vocab.category(part):
                record.set("category", code, f"path component '{part}'")
                return
        prefix = filename_prefix(path)
        if prefix and (code := vocab.category(prefix)):
            record.set("category", code, f"file-name prefix '{prefix}_'")


def is_manifest(tree: Tree, rel: str) -> bool:
    name = posixpath.basename(rel).lower()
    if name in METADATA_NAMES or name == "captions.csv" or not name.endswith(TABLE_SUFFIXES):
        return False
    columns = header_of(tree.root / rel)
    return bool(columns & {"country_code", "url"}) and bool(columns & set(ALIASES["caption"]))


def read_submissions(root: Path, vocab: Vocabulary, flags: dict[str, str]) -> ReadResult:
    from ccub.readers import imagefolder, manifest, tree_layout

    tree = walk(root)
    findings: list[Finding] = []
    defaults = Defaults(tree, flags, findings)
    claimed: set[str] = set()
    records: list[Record] = []
    layouts: dict[str, int] = {}
    for name, reader in (("imagefolder", imagefolder.read), ("manifest", manifest.read),
                         ("folder tree", tree_layout.read)):
        found = reader(tree, vocab, findings, claimed)
        if found:
            layouts[name] = len(found)
        records.extend(found)
    for record in records:
        defaults.fill(record, vocab)
    return ReadResult(records=records, findings=findings, layouts=layouts)
