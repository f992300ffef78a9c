"""Captions: present, meaningful, written by the community, readable by CLIP."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath

import langcodes

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.records import Finding, Record
from ccub.text import clip_tokens_at_least, normalize_caption, word_count

MACHINE_SOURCES = {"machine", "model", "blip", "auto", "automatic", "generated", "ai"}


@cache
def _language_identifier():
    """py3langid's model, loaded once per process (about a second)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # py3langid 0.4 renamed from_pickled_model (0.3) to from_model_file.
    load = getattr(LanguageIdentifier, "from_model_file", None) or \
        LanguageIdentifier.from_pickled_model
    return load(MODEL_FILE, norm_probs=True)


@dataclass
class Captions:
    min_words: int = 3
    min_chars: int = 6
    max_clip_tokens: int = 77
    placeholders: list[str] = field(
        default_factory=lambda: [
            r"(img|dsc|dscn|dscf|pxl|photo|image|pic|screenshot|whatsapp image)[\s_-]*[\d_ -]*"
            r"(\.(jpe?g|png|webp|heic))?",
            r"(a |an )?(photo|image|picture|pic|untitled|caption|no caption|test|todo|tbd|n/?a|none|null|-+|\.+)",
            r"[\d\W_]+",
        ]
    )
    # Language identification is only trusted on captions this long, and a mismatch is
    # reported only when the declared language gets at most 1 - language_min_confidence.
    language_min_chars: int = 20
    language_min_confidence: float = 0.95
    people_words: list[str] = field(
        default_factory=lambda: [
            "person", "people", "man", "men", "woman", "women", "girl", "girls", "boy", "boys",
            "child", "children", "kid", "kids", "family", "families", "bride", "groom",
            "dancer", "dancers", "student", "students", "crowd", "portrait", "face", "elder",
            "grandmother", "grandfather", "mother", "father", "baby", "couple", "worker",
            "vendor", "musician", "musicians", "performer", "performers", "priest", "monk",
        ]
    )


class CaptionChecks(CheckFamily):
    name = "caption"
    specs = (
        CheckSpec("caption.missing", "error", "No caption, or an empty one.",
                  "Write a caption naming the cultural item shown."),
        CheckSpec("caption.placeholder", "error", "The caption is a placeholder (file name, "
                  "IMG_1234, 'photo', only digits).", "Describe what the picture shows.",
                  ("captions.placeholders",)),
        CheckSpec("caption.too_short", "review", "The caption is too short to teach the model "
                  "anything.", "Say what the item is and where, e.g. 'a plate of jollof rice "
                  "with fried plantain'.", ("captions.min_words", "captions.min_chars")),
        CheckSpec("caption.too_long", "error", "The caption is absurdly long.",
                  "Shorten it to a sentence or two.", ("limits.max_caption_chars",)),
        CheckSpec("caption.clip_tokens", "warning", "The caption has more CLIP tokens than "
                  "Stable Diffusion reads (lower bound from CLIP's pre-tokeniser); the rest is "
                  "ignored in training.", "Put the most important words first, or shorten it.",
                  ("captions.max_clip_tokens",)),
        CheckSpec("caption.unicode", "warning", "The caption was normalised (NFC, control "
                  "characters and repeated spaces removed).", "Nothing to do."),
        CheckSpec("caption.repeated", "warning", "The same caption is used for several "
                  "different images.", "Describe what differs between the pictures."),
        CheckSpec("caption.language", "warning", "The caption is almost certainly not in the "
                  "declared ISO 639-1 language (py3langid; captions of 20+ characters only).",
                  "Fix the declared language or the caption.",
                  ("captions.language_min_chars", "captions.language_min_confidence")),
        CheckSpec("caption.language_invalid", "error", "The declared language is not a "
                  "valid language code (BCP 47, e.g. en, ko, yo, pt-BR).",
                  "Write the caption's language as an ISO 639-1 code such as en or ko."),
        CheckSpec("caption.machine", "error", "A machine-written caption stands in for the "
                  "community caption (caption_source says so, or text equals blip_text).",
                  "Have a community member write the caption; keep machine captions in "
                  "blip_text."),
    )

    def __init__(self) -> None:
        self._placeholder_cache: tuple[tuple[str, ...], re.Pattern[str]] | None = None

    def _placeholder(self, patterns: list[str]) -> re.Pattern[str]:
        key = tuple(patterns)
        if self._placeholder_cache is None or self._placeholder_cache[0] != key:
            joined = "|".join(f"(?:{p})" for p in patterns)
            self._placeholder_cache = (key, re.compile(rf"^(?:{joined})$", re.IGNORECASE))
        return self._placeholder_cache[1]

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        c, where = ctx.cfg.captions, {"record": record.key, "file": record.image,
                                      "field": "caption"}
        raw = record.caption
        if raw is None or not raw.strip():
            yield Finding("caption.missing", "no caption", **where)
            return
        if len(raw) > ctx.cfg.limits.max_caption_chars:
            yield Finding("caption.too_long", f"{len(raw):,} characters > "
                          f"{ctx.cfg.limits.max_caption_chars:,}", **where)
            return
        text = normalize_caption(raw)
        # Leading/trailing whitespace (a caption file's final newline) is not worth a warning.
        if text != raw.strip(" \t\r\n"):
            yield Finding("caption.unicode", "normalised", fixed="caption normalised", **where)
        stem = PurePosixPath(record.image or "").stem.lower()
        if self._placeholder(c.placeholders).match(text) or text.lower() in (
                stem, PurePosixPath(record.image or "").name.lower()):
            yield Finding("caption.placeholder", f"'{text[:60]}'", **where)
            return
        words = word_count(text)
        if words < c.min_words or len(text) < c.min_chars:
            yield Finding("caption.too_short", f"'{text}' ({words} word(s), {len(text)} "
                          "characters)", **where)
        tokens = clip_tokens_at_least(text)
        if tokens > c.max_clip_tokens:
            yield Finding("caption.clip_tokens", f"at least {tokens} tokens > "
                          f"{c.max_clip_tokens}", **where)
        source = (record.caption_source or "").strip().lower()
        if source in MACHINE_SOURCES or (
                record.blip_text and normalize_caption(record.blip_text).lower() == text.lower()):
            why = f"caption_source is '{record.caption_source}'" if source in MACHINE_SOURCES \
                else "the caption equals blip_text"
            yield Finding("caption.machine", why, **where)
        if record.language and not langcodes.tag_is_valid(record.language.strip()):
            yield Finding("caption.language_invalid", f"'{record.language[:60]}'",
                          **{**where, "field": "language"})
        elif record.language and len(text) >= c.language_min_chars:
            yield from self._language(record, text, ctx, where)

    def _language(self, record: Record, text: str, ctx: Context, where: dict
                  ) -> Iterable[Finding]:
        declared = record.language.strip().lower().replace("_", "-").split("-")[0]
        identifier = _language_identifier()
        if declared not in identifier.nb_classes:
            return  # not an ISO 639-1 code the model knows: no basis for a judgement
        probabilities = dict(identifier.rank(text))
        found = max(probabilities, key=probabilities.get)
        declared_p = probabilities.get(declared, 0.0)
        # Flag only when the declared language is all but ruled out: mixed captions
        # ("jollof rice at an owambe party") leave the top guess unsure but keep it possible.
        if found != declared and declared_p <= 1 - ctx.cfg.captions.language_min_confidence:
            yield Finding("caption.language", f"declared '{record.language}', reads as "
                          f"'{found}' (P={probabilities[found]:.2f}, P({declared})="
                          f"{declared_p:.2f})", **where)

    def check_dataset(self, records: list[Record], ctx: Context) -> Iterable[Finding]:
        by_caption: dict[str, list[Record]] = defaultdict(list)
        for record in records:
            if record.caption and record.caption.strip() and \
                    len(record.caption) <= ctx.cfg.limits.max_caption_chars:
                by_caption[normalize_caption(record.caption).lower()].append(record)
        for group in by_caption.values():
            images = {r.image for r in group}
            if len(images) < 2:
                continue
            for record in group:
                others = [r.image or r.key for r in group if r is not record][:3]
                yield Finding("caption.repeated", f"same caption as {', '.join(others)}"
                              + (" …" if len(group) > 4 else ""), record=record.key,
                              file=record.image, field="caption")
