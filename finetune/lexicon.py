"""Generic captions without cultural context: the "strip" strategy of `ccub prepare`.

SCoFT's memorisation loss needs, for every community caption, a generic caption of the same
image that names no culture (`blip_text`). The strip strategy derives it from the community
caption with a per-culture lexicon (`[cultures.<slug>]` in `vocabulary.toml`, extendable from
`ccub.toml`). With the shipped Korean lexicon:

    "a girl wearing Korean traditional clothing hanbok"
        -> "a girl wearing traditional clothing"
    "A plate of tteokbokki covered in spicy red sauce on a street stall in Seoul"
        -> "A plate of rice cakes covered in spicy red sauce on a street stall"

The lexicon is English: text in other scripts (Korean hangul, Devanagari, ...) is left as it
is, and so are URLs, e-mail addresses and @handles, which a rewrite would only break.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from ccub.config import Culture

# What a caption becomes when every word of it was cultural context ("Lagos", "Seoul, South
# Korea"): the text encoder still needs a prompt, and this is the most neutral one.
FALLBACK = "a photo"

# Marks the edit points while a caption is rewritten, so that the clean-up (articles, doubled
# words, dangling connectors) touches the seams and never the contributor's own wording.
_MARK = "\x00"

# A place goes together with the preposition that introduces it ("in Seoul", "from Kano") and
# a vague area word between them ("in downtown Seoul", "in rural Haryana").
_PREPOSITIONS = ("in", "at", "on", "from", "near", "around", "across", "outside", "inside", "by", "to",
                 "of", "over", "through", "throughout", "within")
_AREAS = ("downtown", "central", "old", "rural", "urban", "coastal", "northern", "southern", "eastern",
          "western", "north", "south", "east", "west")

_DETERMINERS = frozenset({
    "the", "a", "an", "this", "that", "these", "those", "its", "their", "his", "her", "my", "our",
    "your", "each", "every", "one", "two", "three", "four", "five", "some", "many", "several",
})
# Words that end the noun phrase a term belongs to.
_STOP_WORDS = frozenset(_PREPOSITIONS) | _DETERMINERS | {"and", "or", "with", "for", "while", "is", "are"}
# Generic nouns a term may stand in apposition to: "traditional clothing hanbok" names the
# garment twice. Architecture words (temple, palace, market) are left out on purpose: "temple
# gopuram" or "palace gate" are compounds, where the term names a different thing.
_HEAD_NOUNS = ("clothing", "clothes", "dress", "garment", "outfit", "costume", "dish", "food", "snack",
               "house", "hat", "cap", "bread", "soup", "stew", "cloth", "fabric", "dance", "festival",
               "drink")
# Words whose plural would read wrong ("two jollofs" -> "tomato rices").
_UNCOUNTABLE = frozenset({"rice", "bread", "clothing", "food", "meat", "tea", "wine", "beer", "porridge",
                          "silk", "cotton", "liquor", "tofu", "pork", "beef", "goat", "people"})
# Left at the end of a caption whose closing place was removed ("... served in Lagos, ").
_TRAILING = ("with", "and", "or", "of", "in", "at", "on", "from", "near", "by", "to", "for", "the", "a", "an")
# Left at the start; "in"/"at" are kept because "In the morning, ..." is a fine opening.
_LEADING = ("with", "and", "or", "of")

_UNKNOWN = object()
_PROTECTED = re.compile(r"\S*(?:://|@|www\.)\S*")
_WORD = r"[\w'’-]+"


def _fold(text: str) -> str:
    """Accents off, one character per character, so spans map back onto the original."""
    return "".join(unicodedata.normalize("NFD", ch)[0] for ch in text)


def _norm(term: str) -> str:
    return re.sub(r"[\s-]+", " ", _fold(term).strip().lower())


def _stem(word: str) -> str:
    # Crude, but enough to see that "dancers", "dance" and "dances" name the same thing.
    word = word.lower().strip("'’")
    while len(word) > 3:
        shorter = re.sub(r"(?:ers|er|es|s|e)$", "", word)
        if shorter == word or len(shorter) < 3:
            break
        word = shorter
    return word


_HEAD_STEMS = frozenset(_stem(w) for w in _HEAD_NOUNS)


def _plural(word: str) -> str:
    lower = word.lower()
    if lower in _UNCOUNTABLE or re.search(r"[^s]s$", lower):
        return word  # already plural ("rice cakes")
    if re.search(r"(?:ss|x|z|ch|sh)$", lower):
        return word + "es"
    if re.search(r"[^aeiou]y$", lower):
        return word[:-1] + "ies"
    return word + "s"


def _term_regex(term: str) -> str:
    return r"[\s-]+".join(re.escape(part) for part in term.split(" "))


def _compile(terms: list[str]) -> re.Pattern[str]:
    # Longest first: at any position the alternation takes the first alternative that fits,
    # so "gyeongbokgung palace" must come before "gyeongbokgung".
    alternatives = "|".join(_term_regex(t) for t in sorted(terms, key=len, reverse=True))
    prefix = (rf"(?:(?<![\w'’-])(?P<prep>{'|'.join(_PREPOSITIONS)})\s+"
              rf"(?:(?:{'|'.join(_AREAS)})\s+)?)?")
    return re.compile(
        rf"{prefix}(?<!\w)(?P<term>{alternatives})(?P<plural>e?s)?(?P<poss>['’]s)?(?!\w)",
        re.IGNORECASE,
    )


def _last_word(text: str) -> str | None:
    """The word just before the end of `text`, when nothing but spaces separates them."""
    found = re.search(rf"({_WORD})[\s{_MARK}]*$", text)
    return found.group(1).lower().strip("'’-") if found else None


def _next_words(text: str, limit: int = 3) -> list[str]:
    """The rest of the noun phrase that starts `text` ("rice cakes steamed" of "rice cakes steamed on")."""
    words = []
    for token in text.split()[:limit]:
        word = token.strip(".,;:!?()\"'’").lower()
        if not word or word in _STOP_WORDS:
            break
        words.append(word)
        if token[-1] in ".,;:!?)":
            break
    return words


def _determined(before: str) -> bool:
    """Whether the noun phrase ending `before` already has its determiner ("the old ...").

    The look-back stops at a preposition or a verb-looking word, so "a man visited" does not
    lend its "a" to what was visited.
    """
    for word in reversed(re.findall(_WORD, re.split(r"[,.;:!?()]", before)[-1])[-3:]):
        word = word.lower()
        if word in _DETERMINERS or word.isdigit() or word.endswith(("'s", "’s")):
            return True
        if word in _STOP_WORDS or (len(word) > 4 and word.endswith(("ed", "ing"))):
            return False
    return False


@dataclass
class Lexicon:
    """The English terms that give a caption its cultural context, and their generic wording.

    `terms` maps a normalised term (lower case, no accents, single spaces) to its generic
    wording; "" drops the term and None marks a place, which is removed together with the
    preposition that introduces it ("in Seoul") or as a possessive ("Busan's").
    """

    terms: dict[str, str | None]
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        self.terms = {_norm(k): v for k, v in self.terms.items() if _norm(k)}
        self._pattern = _compile(list(self.terms)) if self.terms else None

    @classmethod
    def for_culture(cls, culture: Culture) -> Lexicon:
        """The culture's name, aliases, adjective, `places` and `generic` map, in rising priority.

        ISO codes are never terms: "IN" or "US" would strip ordinary words.
        """
        terms: dict[str, str | None] = {_norm(p): None for p in (culture.name, *culture.aliases)}
        adjective = _norm(culture.adjective)
        if adjective:
            terms[adjective] = ""
            # "Koreans" are people; "Chinese" has no plural form to look for.
            if adjective.endswith(("n", "i")):
                terms[adjective + "s"] = "people"
        terms.update({_norm(p): None for p in culture.places})
        terms.update({_norm(k): (v or "").strip() for k, v in culture.generic.items()})
        return cls(terms)

    def strip(self, text: str) -> str:
        """`text` without the lexicon's terms: places removed, culture-specific terms generalised.

        Matching is case-insensitive on whole words and phrases, longest term first; the
        untouched text keeps its casing and a capitalised caption stays capitalised. A text
        with no term is returned unchanged, and a text that was nothing but terms becomes
        FALLBACK ("a photo"). Only English (Latin-script) terms are known: hangul and other
        scripts pass through as they are.
        """
        if self._pattern is None or not text:
            return text
        protected = [m.span() for m in _PROTECTED.finditer(text)]
        folded = _fold(text)
        pieces: list[str] = []
        pos = 0
        for match in self._pattern.finditer(folded):
            start, end = match.span()
            if any(a < end and start < b for a, b in protected):
                continue
            rewritten = self._rewrite(match, text, "".join(pieces) + text[pos:start])
            if rewritten is None:
                continue
            pieces += [text[pos:start], rewritten]
            pos = end
        if not pieces:
            return text
        pieces.append(text[pos:])
        return _tidy("".join(pieces), text)

    def _rewrite(self, match: re.Match[str], text: str, before: str) -> str | None:
        """What replaces one match, with marks around the edit; None leaves the match alone."""
        start, term_start, term_end = match.start(), match.start("term"), match.end("term")
        replacement = self.terms.get(_norm(match.group("term")), _UNKNOWN)
        if replacement is _UNKNOWN:
            return None  # a case-insensitive match that lower() does not map back (rare letters)
        plural = match.group("plural") or ""
        if plural and (replacement is None or (plural == "es") != bool(re.search(r"(?:s|x|z|ch|sh)$",
                                                                                 match.group("term")))):
            return None  # "Kanos" is no place and "gates" no plural of "gat"
        prefix = text[start:term_start]
        if replacement is None:
            # A possessive place ("in Busan's markets") leaves its preposition to the noun.
            return (prefix if match.group("poss") else "") + _MARK
        words = self._generic_words(replacement, bool(plural), before + prefix, text[match.end():])
        possessive = text[term_end + len(plural):match.end()] if words else ""
        return prefix + _MARK + " ".join(words) + possessive + _MARK

    @staticmethod
    def _generic_words(replacement: str, plural: bool, before: str, after: str) -> list[str]:
        words = replacement.split()
        if not words:
            return words
        if plural:
            words[-1] = _plural(words[-1])
        previous = _last_word(before)
        if previous is None and not re.search(r"\w", before) and re.match(r"\s*,\s*(?:the|an?)\b", after, re.I):
            return []  # "Gat, the traditional horsehair hat, ...": the caption names it itself
        if previous and (_stem(previous) in _HEAD_STEMS or _stem(previous) == _stem(words[-1])):
            return []  # apposition: "traditional clothing hanbok", "rice cakes tteokbokki"
        if words[0].lower() in ("a", "an") and (plural or _determined(before)):
            words = words[1:]  # "the Gyeongbokgung Palace" -> "the palace", not "the a palace"
        following = {_stem(w) for w in _next_words(after)}
        while words and _stem(words[-1]) in following:
            words.pop()  # "songpyeon rice cakes" -> "rice cakes", not "rice cakes rice cakes"
        while words and previous and words[0].lower() == previous:
            words.pop(0)  # "hand-woven aso oke" -> "hand-woven cloth", not "hand-woven hand-woven"
            previous = None
        return words


def _tidy(edited: str, original: str) -> str:
    """Mend the seams of the edits: articles, doubled words, stray punctuation, connectors."""
    text = edited
    marked = rf"(?:[\s{_MARK}]*{_MARK}[\s{_MARK}]*)"
    # A hyphen or slash whose other half was removed ("the Abuja-Kaduna expressway").
    text = re.sub(rf"(?<={_MARK})[-–/]+(?=[\s{_MARK}]|$)|(?:(?<=[\s{_MARK}])|^)[-–/]+(?={_MARK})", "", text)
    text = re.sub(rf"\b(\w+)({marked}+)\1\b", r"\1\2", text, flags=re.I)  # "dress \0dress"
    # The article before an edit agrees with the word now after it, by its first letter.
    text = re.sub(rf"\b([Aa]n?)({marked})(?=(\w))", _article, text)
    starts_edited = re.match(rf"[\s,;:]*{_MARK}", text) is not None
    ends_edited = re.search(rf"{_MARK}[\s{_MARK},;:.!?]*$", text) is not None
    text = text.replace(_MARK, " ")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text)
    text = re.sub(r"\(\)|\[\]", "", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"[,;:]+(?=\s*(?:[.!?]|$))", "", text)
    text = re.sub(r"^[\s,;:.-]+", "", text)
    if starts_edited:
        text = re.sub(rf"^(?:(?:{'|'.join(_LEADING)})\b[\s,]*)+", "", text, flags=re.I)
    if ends_edited:
        body, final = re.match(r"(.*?)([.!?]*)$", text, re.S).groups()
        body = re.sub(rf"(?:[\s,;:-]+(?:(?:{'|'.join(_TRAILING)})\b)?)+$", "", " " + body, flags=re.I).strip()
        text = body + final if body else ""
    text = re.sub(r"\s+", " ", text).strip()
    if not re.search(r"\w", text):
        text = FALLBACK
    if original.lstrip()[:1].isupper():
        text = text[:1].upper() + text[1:]
    return text


def _article(match: re.Match[str]) -> str:
    article = "an" if match.group(3).lower() in "aeiou" else "a"
    if match.group(1)[0].isupper():
        article = article.capitalize()
    return article + match.group(2)


@functools.lru_cache(maxsize=64)
def _cached(key: tuple) -> Lexicon:
    name, adjective, aliases, places, generic = key
    return Lexicon.for_culture(Culture(name=name, adjective=adjective, iso3="", iso2="", aliases=list(aliases),
                                       places=list(places), generic=dict(generic)))


def strip_caption(text: str, culture: Culture) -> str:
    """`Lexicon.for_culture(culture).strip(text)`, compiling each culture's lexicon once."""
    key = (culture.name, culture.adjective, tuple(culture.aliases), tuple(culture.places),
           tuple(culture.generic.items()))
    return _cached(key).strip(text)
