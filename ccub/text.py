"""Caption text: normalisation, word and CLIP-token counts, personal data patterns."""

from __future__ import annotations

import re
import unicodedata

# CLIP's pre-tokeniser splits text into words, single digits and punctuation runs before
# byte-pair encoding; every piece becomes at least one BPE token. Counting the pieces gives
# a lower bound on the token count without loading a tokenizer (curation never imports
# torch). Scripts without spaces get one piece per character: CLIP's byte-level BPE splits
# them at least that finely.
_CLIP_PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+", re.IGNORECASE)
_NO_SPACE_SCRIPTS = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\u0e00-\u0e7f\u0e80-\u0eff"
    r"\u1000-\u109f\u1780-\u17ff\uf900-\ufaff]"
)
# Whitespace controls become spaces; ZWNJ/ZWJ are format characters that spell words in
# Sinhala, Malayalam, Devanagari, Persian... (Sinhala "Sri" is U+0DC1 U+0DCA U+200D U+0DBB U+0DD3),
# so they are kept.
_KEEP_FORMAT = "\t\n\r\u200c\u200d"
CLIP_SPECIAL_TOKENS = 2  # start and end of text occupy two of the 77 positions

EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
URL = re.compile(r"\b(?:https?://|www\.)\S{2,}", re.IGNORECASE)
HANDLE = re.compile(r"(?<![\w.@])@[A-Za-z0-9_]{2,30}\b")
# Not followed by a word or by ':' and a digit, so "2023-05-01 12:30" is not read as a number.
PHONE = re.compile(r"(?<![\w+])\+?\d[\d\s().-]{7,18}\d(?!\w|:\d)")


def normalize_caption(text: str) -> str:
    """NFC, control characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if ch in "\t\n\r" else ch for ch in text
                   if ch in _KEEP_FORMAT or unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return re.sub(r"\s+", " ", text).strip()


def word_count(text: str) -> int:
    """Whitespace-separated words, each character of a script without spaces counting as one."""
    return len(_NO_SPACE_SCRIPTS.sub(" x ", text).split())


def clip_tokens_at_least(text: str) -> int:
    pieces = 0
    for piece in _CLIP_PIECES.findall(text.lower()):
        cjk = len(_NO_SPACE_SCRIPTS.findall(piece))
        pieces += max(1, cjk) if cjk else 1
    return pieces + CLIP_SPECIAL_TOKENS


def _is_range(text: str) -> bool:
    """'15000-20000': two equally long, ascending numbers, as in prices and years."""
    parts = re.split(r"\s*[-–]\s*", text.strip())
    return (len(parts) == 2 and all(p.isdigit() for p in parts)
            and len(parts[0]) == len(parts[1]) and int(parts[0]) < int(parts[1]))


def phone_numbers(text: str) -> list[str]:
    found = []
    for match in PHONE.finditer(text):
        digits = sum(ch.isdigit() for ch in match.group())
        # Phone numbers have 9 to 15 digits (E.164); ranges such as "1990-2020" are not ones.
        if 9 <= digits <= 15 and not _is_range(match.group()):
            found.append(match.group())
    return found
