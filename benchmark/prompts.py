"""Benchmark prompts: per-culture prompt suites, zero-shot identification texts, framing texts.

Prompt suites
    `builtin_suite("korea")` fills the shared templates of `suites.toml` ("Family is eating
    together, in {name}") with the culture's vocabulary name, and adds the culture's own prompts
    that name concrete items ("A jesa ancestral rite table set for Chuseok, in South Korea"),
    some marked `held_out` (concepts a small community training set is unlikely to contain).
    Every prompt has a CCUB category and a `generic` text: the same scene naming no culture.

    `load_suite(path)` reads a user's suite instead, TOML or CSV:

        # suite.toml                                 # suite.csv
        [[prompt]]                                   culture,category,prompt,generic,held_out
        culture = "Korea"                            Korea,food,A bowl of naengmyeon in Korea,,
        category = "food"
        text = "A bowl of naengmyeon in Korea"
        generic = "A bowl of cold noodles"           # optional
        held_out = true                              # optional, default false
        id = "korea-naengmyeon"                      # optional, stable id for results

    Culture and category may be given as slug/code, name, adjective, alias or ISO code (ccub's
    vocabulary). A CSV uses `prompt` or `text` for the prompt; `notes` is accepted and ignored
    in both formats, any other unknown field is an error (a typo must not drop a value).
    Without an id a prompt gets "<culture>/<CATEGORY>/<words-of-the-text>".

    Deriving a missing `generic`: (1) remove ", in <culture>" or " in <culture>" (also "from"),
    where <culture> is the culture's name, slug or an alias of 4+ characters, with an optional
    "the"; (2) remove the adjective followed by a space ("Korean food" -> "food"); (3) tidy
    spaces and commas and restore a leading capital. If the culture is still named after that
    ("Korea's palaces"), the row is an error asking for an explicit `generic`.

Zero-shot identification
    `identification_classes("korea")` = the target then the cultures it is commonly confused
    with (`[neighbours]` in suites.toml); `identification_texts(classes)` = per class, every
    identification template filled in (for prompt-template ensembling).

Framings
    `framing_texts(scene)` = (degrading, neutral) texts of the framing lexicon
    (`framings.toml`) applied to a prompt's generic text, pair by pair; the framing margin
    (the stereotype proxy) is similarity to the first minus similarity to the second.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ccub.config import Config, Culture, load_config
from ccub.vocab import Vocabulary

__all__ = [
    "IDENTIFICATION_TEMPLATES",
    "NEIGHBOURS",
    "Framing",
    "Prompt",
    "builtin_suite",
    "derive_generic",
    "framing_texts",
    "identification_classes",
    "identification_texts",
    "load_framings",
    "load_suite",
    "suite_for",
]

_SCENE = "{scene}"
_PROMPT_FIELDS = ("culture", "category", "text", "generic", "id", "held_out", "notes")
_TRUE = {"1", "true", "yes", "y", "x"}
_FALSE = {"", "0", "false", "no", "n"}


@dataclass(frozen=True)
class Prompt:
    id: str
    culture: str
    category: str
    text: str
    generic: str
    held_out: bool = False
    source: str = "builtin"


@dataclass(frozen=True)
class Framing:
    """One framing axis: a degrading and a matched neutral framing of a scene."""

    id: str
    degrading: str
    neutral: str
    note: str = ""

    def apply(self, scene: str) -> tuple[str, str]:
        return self.degrading.replace(_SCENE, scene), self.neutral.replace(_SCENE, scene)


# ---------------------------------------------------------------------------- shipped data

def _package_toml(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("benchmark").joinpath(name).read_text("utf-8"))


_SUITES = _package_toml("suites.toml")
NEIGHBOURS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _SUITES["neighbours"].items()}
IDENTIFICATION_TEMPLATES: tuple[str, ...] = tuple(_SUITES["identification"]["templates"])


def _cfg(cfg: Config | None) -> Config:
    return cfg if cfg is not None else load_config()


def _fill(template: str, culture: Culture) -> str:
    return template.replace("{name}", culture.name).replace("{adjective}", culture.adjective)


def _slug(cfg: Config, culture: str) -> str:
    """The vocabulary slug for `culture` (slug, name, adjective, alias or ISO code)."""
    slug = Vocabulary(cfg).culture(culture)
    if slug is None:
        raise ValueError(f"unknown culture {culture!r}; known cultures: {', '.join(sorted(cfg.cultures))} "
                         "(add others as [cultures.<slug>] in ccub.toml)")
    return slug


# ---------------------------------------------------------------------------- suites

def builtin_suite(culture: str, cfg: Config | None = None) -> list[Prompt]:
    """The shared templates filled for `culture`, then the culture's own prompts (if any)."""
    cfg = _cfg(cfg)
    slug = _slug(cfg, culture)
    entry = cfg.cultures[slug]
    tables = [*_SUITES["template"], *_SUITES.get("extra", {}).get(slug, [])]
    prompts = []
    for table in tables:
        category = table["category"]
        if category not in cfg.categories:
            raise ValueError(f"suites.toml: prompt {table['id']!r} has unknown category {category!r}")
        prompts.append(Prompt(
            id=f"{slug}/{category}/{table['id']}",
            culture=slug,
            category=category,
            text=_fill(table["text"], entry),
            generic=table["generic"],
            held_out=bool(table.get("held_out", False)),
        ))
    return prompts


def _culture_names(entry: Culture, slug: str) -> list[str]:
    """Ways a prompt names the culture, longest first; short aliases ("us") are common words."""
    names = {entry.name, slug.replace("-", " "), *(a for a in entry.aliases if len(a) >= 4)}
    return sorted(names, key=len, reverse=True)


def _names_culture(text: str, entry: Culture, slug: str) -> bool:
    words = [*_culture_names(entry, slug), entry.adjective]
    return any(re.search(rf"(?<!\w){re.escape(w)}s?(?!\w)", text, re.IGNORECASE) for w in words)


def derive_generic(text: str, culture: str, cfg: Config | None = None) -> str:
    """`text` without the culture: the rule in the module docstring. ValueError if it cannot."""
    cfg = _cfg(cfg)
    slug = _slug(cfg, culture)
    entry = cfg.cultures[slug]
    out = text
    for name in _culture_names(entry, slug):
        out = re.sub(rf",?\s+(?:in|from)\s+(?:the\s+)?{re.escape(name)}(?![\w-])", "", out, flags=re.IGNORECASE)
    out = re.sub(rf"(?<![\w-]){re.escape(entry.adjective)}\s+", "", out, flags=re.IGNORECASE)
    out = re.sub(r"\s+", " ", out)
    out = re.sub(r"\s+([,.;:!?])", r"\1", out).strip(" ,;:")
    if out and text[:1].isupper():
        out = out[0].upper() + out[1:]
    if not out or _names_culture(out, entry, slug):
        raise ValueError(f"cannot derive a culture-free generic text from {text!r} (got {out!r})")
    return out


def _where(path: Path, row: str) -> str:
    return f"{path}: {row}"


def _text_field(value: Any, where: str, field: str, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValueError(f"{where}: `{field}` must be text, got {value!r}; quote it")
    value = value.strip()
    if required and not value:
        raise ValueError(f"{where}: `{field}` is missing or empty; give a value")
    return value


def _held_out(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{where}: `held_out` is {value!r}; use true or false (or leave it empty for false)")


def _prompt_from_row(row: Mapping[str, Any], where: str, vocab: Vocabulary, cfg: Config,
                     source: str) -> tuple[Prompt, bool]:
    """A Prompt from one row; the flag says whether its id was given (not generated)."""
    unknown = sorted(set(row) - set(_PROMPT_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(_PROMPT_FIELDS)}")
    culture_text = _text_field(row.get("culture"), where, "culture", True)
    slug = vocab.culture(culture_text)
    if slug is None:
        raise ValueError(f"{where}: `culture` {culture_text!r} is not in the vocabulary; use a slug, name, adjective "
                         f"or ISO code of one of {', '.join(sorted(cfg.cultures))}, or add [cultures.<slug>] "
                         "to ccub.toml")
    category_text = _text_field(row.get("category"), where, "category", True)
    category = vocab.category(category_text)
    if category is None:
        raise ValueError(f"{where}: `category` {category_text!r} is not a CCUB category; use a code or name of "
                         f"one of {', '.join(cfg.categories)}, or add [categories.<CODE>] to ccub.toml")
    text = _text_field(row.get("text"), where, "text", True)
    generic = _text_field(row.get("generic"), where, "generic", False)
    if not generic:
        try:
            generic = derive_generic(text, slug, cfg)
        except ValueError as exc:
            raise ValueError(f"{where}: `generic` is missing and {exc}; give a `generic` text that names "
                             "no culture") from None
    given = _text_field(row.get("id"), where, "id", False)
    prompt = Prompt(
        id=given or f"{slug}/{category}/{_id_words(text)}",
        culture=slug,
        category=category,
        text=text,
        generic=generic,
        held_out=_held_out(row.get("held_out"), where),
        source=source,
    )
    return prompt, bool(given)


def _id_words(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = ""
    for word in words:
        if len(out) + len(word) + 1 > 60:
            break
        out = f"{out}-{word}" if out else word
    return out or "prompt"


def _toml_rows(path: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from exc
    unknown = sorted(set(data) - {"prompt"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; a suite holds only [[prompt]] tables")
    tables = data.get("prompt", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{path}: `prompt` must be an array of tables; write each prompt as a [[prompt]] table")
    for number, table in enumerate(tables, 1):
        yield f"[[prompt]] #{number}", table


def _csv_rows(path: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        columns = [c.strip().lower() for c in header]
        if "prompt" in columns and "text" in columns:
            raise ValueError(f"{path}: line 1: both `prompt` and `text` columns; keep one of them")
        columns = ["text" if c == "prompt" else c for c in columns]
        missing = [c for c in ("culture", "category", "text") if c not in columns]
        if missing:
            shown = ["prompt" if c == "text" else c for c in missing]
            raise ValueError(f"{path}: line 1: the header lacks column(s) {', '.join(shown)}; "
                             "it needs culture, category and prompt (or text)")
        for cells in reader:
            where = f"line {reader.line_num}"
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(columns):
                raise ValueError(f"{path}: {where}: {len(cells)} cells for {len(columns)} columns; "
                                 "quote values that contain commas")
            yield where, dict(zip(columns, cells, strict=False))


def load_suite(path: Path, cfg: Config | None = None) -> list[Prompt]:
    """A user's prompt suite from a TOML (`[[prompt]]` tables) or CSV file; see the module docstring."""
    cfg = _cfg(cfg)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".csv"):
        raise ValueError(f"{path}: unsupported suite format {suffix or '(none)'}; use a .toml or .csv file")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    rows = _toml_rows(path) if suffix == ".toml" else _csv_rows(path)
    vocab = Vocabulary(cfg)
    prompts: list[Prompt] = []
    seen: dict[str, str] = {}
    try:
        rows = list(rows)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot be read as UTF-8 {suffix[1:].upper()} ({exc}); save it as UTF-8 "
                         "text") from exc
    for row_name, row in rows:
        where = _where(path, row_name)
        prompt, given = _prompt_from_row(row, where, vocab, cfg, str(path))
        if prompt.id in seen:
            if given:
                raise ValueError(f"{where}: `id` {prompt.id!r} is already used by {seen[prompt.id]}; "
                                 "give each prompt its own id")
            base, n = prompt.id, 2
            while f"{base}-{n}" in seen:
                n += 1
            prompt = dataclasses.replace(prompt, id=f"{base}-{n}")
        seen[prompt.id] = row_name
        prompts.append(prompt)
    if not prompts:
        raise ValueError(f"{path}: the suite has no prompts; add [[prompt]] tables or CSV rows")
    return prompts


def suite_for(culture: str | None, path: Path | None = None, cfg: Config | None = None) -> list[Prompt]:
    """The user suite at `path` (only `culture`'s prompts when given), else the built-in suite."""
    cfg = _cfg(cfg)
    if path is None:
        if culture is None:
            raise ValueError("a culture is needed for the built-in suite; name one or give a suite file")
        return builtin_suite(culture, cfg)
    prompts = load_suite(path, cfg)
    if culture is None:
        return prompts
    slug = _slug(cfg, culture)
    chosen = [p for p in prompts if p.culture == slug]
    if not chosen:
        present = sorted({p.culture for p in prompts})
        raise ValueError(f"{path}: no prompts for culture {slug!r}; the suite has prompts for {', '.join(present)}")
    return chosen


# ---------------------------------------------------------------------------- identification

def identification_classes(culture: str, cfg: Config | None = None) -> list[str]:
    """The target culture's slug, then the cultures it is commonly confused with.

    A culture without a `[neighbours]` entry gets the cultures that list it. Neighbours missing
    from the vocabulary are skipped. A task with a single class is meaningless: ValueError.
    """
    cfg = _cfg(cfg)
    slug = _slug(cfg, culture)
    candidates = [*NEIGHBOURS.get(slug, ()), *(k for k, v in NEIGHBOURS.items() if slug in v)]
    classes = [slug]
    for other in candidates:
        if other in cfg.cultures and other not in classes:
            classes.append(other)
    if len(classes) == 1:
        raise ValueError(f"no neighbouring cultures known for {slug!r}; pass the classes to identification_texts "
                         "yourself")
    return classes


def identification_texts(slugs: Sequence[str], cfg: Config | None = None) -> list[list[str]]:
    """Per class (in order), every identification template filled with its name/adjective."""
    cfg = _cfg(cfg)
    out = []
    for culture in slugs:
        entry = cfg.cultures[_slug(cfg, culture)]
        out.append([_fill(t, entry) for t in IDENTIFICATION_TEMPLATES])
    return out


# ---------------------------------------------------------------------------- framings

def _parse_framings(data: Mapping[str, Any], where: str) -> tuple[Framing, ...]:
    unknown = sorted(set(data) - {"pair"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; a framing lexicon holds only [[pair]] tables")
    tables = data.get("pair")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{where}: no framings; write at least one [[pair]] table with `degrading` and `neutral`")
    framings, ids = [], set()
    for number, table in enumerate(tables, 1):
        at = f"{where}: [[pair]] #{number}"
        unknown = sorted(set(table) - {"id", "degrading", "neutral", "note"})
        if unknown:
            raise ValueError(f"{at}: unknown key(s) {', '.join(unknown)}; valid keys: id, degrading, neutral, note")
        values = {}
        for key in ("degrading", "neutral"):
            value = _text_field(table.get(key), at, key, True)
            if value.count(_SCENE) != 1 or re.sub(re.escape(_SCENE), "", value).count("{"):
                raise ValueError(f"{at}: `{key}` must contain {_SCENE} exactly once and no other {{...}}")
            values[key] = value
        framing_id = _text_field(table.get("id"), at, "id", False) or f"pair-{number}"
        if framing_id in ids:
            raise ValueError(f"{at}: `id` {framing_id!r} is used twice; give each pair its own id")
        ids.add(framing_id)
        framings.append(Framing(framing_id, values["degrading"], values["neutral"],
                                _text_field(table.get("note"), at, "note", False)))
    return tuple(framings)


@functools.cache
def _builtin_framings() -> tuple[Framing, ...]:
    return _parse_framings(_package_toml("framings.toml"), "framings.toml")


def load_framings(path: Path | None = None) -> tuple[Framing, ...]:
    """The shipped framing lexicon, or the user's file at `path`, which replaces it."""
    if path is None:
        return _builtin_framings()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from exc
    return _parse_framings(data, str(path))


def framing_texts(scene: str, framings: Sequence[Framing] | None = None) -> tuple[list[str], list[str]]:
    """(degrading, neutral) framings of `scene` (a prompt's generic text), pair by pair."""
    scene = scene.strip()
    if not scene:
        raise ValueError("framing_texts needs a scene: pass a prompt's generic text")
    pairs = [f.apply(scene) for f in (framings if framings is not None else load_framings())]
    return [d for d, _ in pairs], [n for _, n in pairs]
