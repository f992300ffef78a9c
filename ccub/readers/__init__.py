"""Read a submissions folder, whatever its layout, into records.

One walk of the tree finds every metadata file, manifest, `submission.toml` and image. Each
layout has its reader (imagefolder, manifest, tree); a folder may mix them. Files a reader
claims are not read again by the next, and images nobody claims are reported.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ccub.config import Limits
from ccub.imaging.analyze import IMAGE_SUFFIXES
from ccub.readers.fields import ALIASES, header_of
from ccub.records import Finding, Record
from ccub.safeio import Root, UnsafeFile, kind_of
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
    source: Root  # every file under the root is read through it
    limits: Limits
    files: list[str] = field(default_factory=list)  # regular files and symlinks to files
    special: dict[str, str] = field(default_factory=dict)  # FIFOs, sockets, devices: path -> kind
    dirs: set[str] = field(default_factory=set)

    @property
    def real(self) -> Path:
        return self.source.real

    def images(self) -> list[str]:
        return [f for f in self.files if PurePosixPath(f).suffix.lower() in IMAGE_SUFFIXES]

    def resolve(self, base: str, value: str) -> tuple[str | None, str | None]:
        """(path relative to the root, problem) for a path written in a file under `base`."""
        if "\x00" in value:  # no file system takes it; pathlib raises on it
            return None, f"{value!r} contains a NUL character; write the file's name"
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

    def problem(self, rel: str, listed_as: str) -> tuple[str, str] | None:
        """(check, message) when `rel` is not a regular file; symlinks inside are followed.

        Only stat is used: a FIFO or device is never opened.
        """
        try:
            mode = os.stat(self.root / rel).st_mode
        except FileNotFoundError:
            return "file.missing", f"'{listed_as}' is listed but does not exist"
        except OSError as exc:
            return "file.unreadable", f"'{listed_as}' cannot be read ({exc.strerror})"
        if not stat.S_ISREG(mode):
            return "file.not_regular", f"'{listed_as}' is {kind_of(mode)}, not a regular file"
        return None

    def read_bytes(self, rel: str, findings: list[Finding], **where: Any) -> bytes | None:
        """The bytes of a one-value file (a caption file, a submission.toml), at most
        limits.max_line_bytes; None and a finding when it cannot be read safely."""
        try:
            return self.source.read(rel, self.limits.max_line_bytes)[0]
        except UnsafeFile as exc:
            if exc.check == "file.too_large":
                findings.append(Finding("metadata.limit", f"{exc} (limits.max_line_bytes); it "
                                        "was not read", file=rel, **where))
            else:
                findings.append(Finding(exc.check, str(exc), file=rel, **where))
            return None


@dataclass
class ReadResult:
    root: Root
    records: list[Record]
    findings: list[Finding]
    layouts: dict[str, int]  # layout name -> number of records it produced


def walk(root: Path, limits: Limits) -> Tree:
    if not root.is_dir():
        raise RootError(f"{root}: not a folder (give the folder that holds the submissions)")
    tree = Tree(root=root, source=Root(root), limits=limits)
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            if not rel_dir:
                raise RootError(f"{root}: cannot be read ({exc.strerror})") from exc
            continue  # an unreadable sub-folder: its files are simply not found
        tree.dirs.add(rel_dir)
        for entry in listed:
            if entry.name.startswith("."):
                continue
            rel = posixpath.join(rel_dir, entry.name) if rel_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                pending.append(rel)
            elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                tree.files.append(rel)  # where a symlink leads is decided when it is opened
            else:
                tree.special[rel] = kind_of(entry.stat(follow_symlinks=False).st_mode)
    tree.files.sort()
    return tree


class Defaults:
    """Values that apply to every record below a folder: submission.toml files and flags."""

    def __init__(self, tree: Tree, flags: dict[str, str], findings: list[Finding]):
        self.flags = {k: v for k, v in flags.items() if v}
        self.tables: dict[str, dict[str, Any]] = {}
        for rel in tree.files:
            if posixpath.basename(rel) == SUBMISSION_TOML:
                table = self._load(tree, rel, findings)
                if table:
                    self.tables[posixpath.dirname(rel)] = table

    @staticmethod
    def _load(tree: Tree, rel: str, findings: list[Finding]) -> dict[str, Any]:
        data = tree.read_bytes(rel, findings)
        if data is None:
            return {}
        try:
            table = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            findings.append(Finding("metadata.malformed", f"not valid TOML ({exc}); its "
                                    "defaults were not applied", file=rel))
            return {}
        unknown = sorted(set(table) - set(DEFAULTABLE))
        if unknown:
            findings.append(Finding("metadata.malformed", f"unknown key(s) {', '.join(unknown)} "
                                    f"ignored; allowed: {', '.join(DEFAULTABLE)}", file=rel))
        kept = {}
        for key in sorted(set(table) & set(DEFAULTABLE)):
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                findings.append(Finding("metadata.field_type", f"{key} is a TOML "
                                        f"{type(value).__name__}, not text; it was not applied",
                                        file=rel, field=key))
            else:
                kept[key] = str(value)
        return kept

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
    return manifest_columns(header_of(tree, rel))


def manifest_columns(columns: set[str]) -> bool:
    """Whether a table with these (lower-cased) columns is a CCUB-style manifest."""
    return bool(columns & {"country_code", "url"}) and bool(columns & set(ALIASES["caption"]))


def _root_culture(root: Path, vocab: Vocabulary) -> tuple[str, str] | None:
    """(slug, folder name) when the submissions folder itself is named for a culture, as in
    `ccub validate culture_data/korea` on the layout of the public SCoFT data."""
    name = root.resolve().name
    slug = vocab.culture(name)
    return (slug, name) if slug else None


def read_submissions(root: Path, vocab: Vocabulary, flags: dict[str, str], limits: Limits
                     ) -> ReadResult:
    from ccub.readers import imagefolder, manifest, tree_layout

    tree = walk(root, limits)
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
    own_name = _root_culture(root, vocab)
    for record in records:
        defaults.fill(record, vocab)
        if not record.culture and own_name:
            record.set("culture", own_name[0], f"submissions folder '{own_name[1]}'")
    for rel, kind in sorted(tree.special.items()):
        if rel not in claimed:
            findings.append(Finding("file.not_regular", f"{kind}, not a regular file; it was not "
                                    "read", file=rel))
    return ReadResult(root=tree.source, records=records, findings=findings, layouts=layouts)
