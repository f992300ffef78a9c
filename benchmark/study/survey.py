"""The ranking study's survey: one self-contained HTML file that a participant opens from disk.

`load_texts(culture, override)` reads every text the participant sees from `texts.toml`
(English), lets a community replace any of them with a TOML file of its own (a translation),
and fills in the culture's display name. `render_survey(data)` turns the study's items (a
prompt and the K images of one (prompt, seed), as `data:` URIs) into the page.

The page loads nothing and sends nothing: a Content-Security-Policy forbids every request but
inline images, and the participant saves their answers to a file (JSON or CSV) that they send
to the organisers themselves. Prompts and texts are untrusted: they travel as one JSON blob in
which nothing can close the script element, and the page only ever puts them in as text.

What the page saves, `ccub-study-<study_id>-<participant>.json` (rankings list slots best first;
one answer per shown item and question, items in the order shown, questions in `questions` order):

    {"format": "ccub-study-response", "version": 1, "study_id": "3f2a9c1e0b7d",
     "participant": "p-0123456789abcdef", "consent": true,
     "affiliation": {"identifies": "yes" | "no" | "unsaid", "description": "free text or ''"},
     "started": "2025-05-01T09:00:00.000Z", "finished": "2025-05-01T09:20:00.000Z",
     "items_shown": ["i003", "i001"],
     "answers": [{"item": "i003", "question": "alignment", "ranking": ["C", "A", "D", "B"]}, ...]}

or the same as `.csv` (UTF-8, CRLF, RFC 4180 quoting), one row per answer:

    study_id,participant,item,question,ranking,identifies,affiliation,consent,started,finished
    3f2a9c1e0b7d,p-0123456789abcdef,i003,alignment,C>A>D>B,yes,free text,true,2025-...,2025-...

The page's behaviour (shuffled item order, ranking rules, autosave in localStorage) and the
element ids that tests rely on are described at the top of `survey.html`.
"""

from __future__ import annotations

import html
import json
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["QUESTIONS", "load_texts", "render_survey"]

QUESTIONS: tuple[str, ...] = ("alignment", "representation", "stereotypes", "offensiveness")
QUESTION_KEYS = ("name", "title", "help", "best", "worst")

MIN_IMAGES, MAX_IMAGES = 2, 8
# Ids end up in localStorage keys, file names, element ids and JS property names: a leading
# letter or digit keeps "__proto__" and path tricks out.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SLOT = re.compile(r"[A-Za-z0-9]+")
_IMAGE_SRC = re.compile(r"data:image/(?:jpeg|png|webp);base64,[A-Za-z0-9+/=]*")
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
_PLACEHOLDER = re.compile(r"@@(\w+)@@")

# `<`, `>` and `&` could close the script element or open a comment in it; U+2028/9 end a
# line in older JS parsers. "://" is broken up so that the file never contains a URL a
# scanner or a careless reader could mistake for a resource the page loads.
_JSON_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
    ("://", ":\\/\\/"),
)


def load_texts(culture: str, override: Path | None = None) -> dict:
    """Every text of the survey, `override`'s keys replacing the defaults, `{culture}` filled in."""
    texts = _defaults()
    if override is not None:
        path = Path(override)
        _merge(texts, _read_toml(path), path, prefix="")
    _check_page_settings(texts, override)
    return _fill_culture(texts, culture)


def _defaults() -> dict:
    return tomllib.loads(resources.files(__package__).joinpath("texts.toml").read_text("utf-8"))


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: survey texts file not found") from exc
    except OSError as exc:
        raise ValueError(f"{path}: cannot read survey texts ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: survey texts are not valid TOML ({exc})") from exc


def _merge(base: dict, override: dict, path: Path, prefix: str) -> None:
    """Replace `base`'s values by `override`'s in place; every key must exist with the same shape."""
    for key, value in override.items():
        name = prefix + key
        if key not in base:
            valid = ", ".join(prefix + k for k in sorted(base))
            raise ValueError(f"{path}: unknown survey text key {name!r}; valid keys: {valid}")
        default = base[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ValueError(f"{path}: survey text key {name!r} must be a table")
            _merge(default, value, path, name + ".")
        elif _shape(value) != _shape(default):
            raise ValueError(f"{path}: survey text key {name!r} must be {_shape(default)}")
        else:
            base[key] = value


def _shape(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "a list of strings"
    return type(value).__name__


def _check_page_settings(texts: dict, override: Path | None) -> None:
    # These two become HTML attributes: a bad value would silently mis-render the page.
    source = override or "survey texts"
    if not _LANGUAGE.fullmatch(texts["language"]):
        raise ValueError(f"{source}: language {texts['language']!r} is not a language tag such as 'en' or 'ko'")
    if texts["direction"] not in ("ltr", "rtl"):
        raise ValueError(f"{source}: direction {texts['direction']!r} must be 'ltr' or 'rtl'")


def _fill_culture(value: Any, culture: str) -> Any:
    # str.replace, not str.format: translations may contain other braces, and a culture
    # name that itself contains "{culture}" must not be expanded again.
    if isinstance(value, dict):
        return {k: _fill_culture(v, culture) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_culture(v, culture) for v in value]
    return value.replace("{culture}", culture)


def render_survey(data: Mapping[str, Any]) -> str:
    """The survey page for `data` (study_id, title, culture, smoke_run, per_participant, texts, questions, items)."""
    payload = _payload(data)
    texts = payload["texts"]
    values = {
        "language": _html_text(texts["language"]),
        "direction": _html_text(texts["direction"]),
        "title": _html_text(payload["title"]),
        "noscript": _html_text(texts["noscript"]),
        "data": _script_json(payload),
    }
    template = resources.files(__package__).joinpath("survey.html").read_text("utf-8")
    # One pass, so that a substituted value is never scanned for placeholders itself.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def _html_text(text: str) -> str:
    return html.escape(text).replace("://", ":&#47;&#47;")


def _script_json(payload: dict) -> str:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _JSON_ESCAPES:
        text = text.replace(char, escape)
    return text


def _payload(data: Mapping[str, Any]) -> dict:
    """What the page needs from `data`, checked: only these fields reach the file."""
    study_id = data["study_id"]
    if not isinstance(study_id, str) or not _ID.fullmatch(study_id):
        raise ValueError(f"survey data: study_id {study_id!r} must be letters, digits, '.', '_' or '-'")
    for key in ("title", "culture"):
        _require(isinstance(data[key], str), f"{key} must be a string")
    _require(isinstance(data["smoke_run"], bool), "smoke_run must be true or false")
    per = data["per_participant"]
    _require(isinstance(per, int) and not isinstance(per, bool) and per >= 0,
             f"per_participant must be a whole number >= 0, not {per!r}")
    questions = _questions(data["questions"], data["texts"])
    return {
        "study_id": study_id,
        "title": data["title"],
        "culture": data["culture"],
        "smoke_run": data["smoke_run"],
        "per_participant": per,
        "questions": questions,
        "texts": data["texts"],
        "items": _items(data["items"]),
    }


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"survey data: {message}")


def _questions(questions: Any, texts: Mapping[str, Any]) -> list[str]:
    questions = list(questions)
    _require(bool(questions), "no questions")
    _require(len(set(questions)) == len(questions), f"a question is listed twice: {questions}")
    for question in questions:
        _require(question in QUESTIONS, f"unknown question {question!r}; valid: {', '.join(QUESTIONS)}")
        entry = texts.get("questions", {}).get(question, {})
        missing = [k for k in QUESTION_KEYS if not isinstance(entry.get(k), str)]
        _require(not missing, f"texts of question {question!r} lack {', '.join(missing)}")
    return questions


def _items(items: Any) -> list[dict]:
    items = [_item(item) for item in items]
    _require(bool(items), "no items")
    ids = [item["id"] for item in items]
    _require(len(set(ids)) == len(ids), "two items have the same id")
    slots = [image["slot"] for image in items[0]["images"]]
    for item in items:
        _require([image["slot"] for image in item["images"]] == slots,
                 f"item {item['id']!r} has slots {[i['slot'] for i in item['images']]}, the first item {slots}")
    return items


def _item(item: Mapping[str, Any]) -> dict:
    item_id = item["id"]
    _require(isinstance(item_id, str) and bool(_ID.fullmatch(item_id)),
             f"item id {item_id!r} must be letters, digits, '.', '_' or '-'")
    _require(isinstance(item["prompt"], str), f"item {item_id!r}: prompt must be a string")
    images = [_image(item_id, image) for image in item["images"]]
    _require(MIN_IMAGES <= len(images) <= MAX_IMAGES,
             f"item {item_id!r} has {len(images)} images; a survey ranks {MIN_IMAGES} to {MAX_IMAGES}")
    slots = [image["slot"] for image in images]
    _require(len(set(slots)) == len(slots), f"item {item_id!r} repeats a slot: {slots}")
    return {"id": item_id, "prompt": item["prompt"], "images": images}


def _image(item_id: str, image: Mapping[str, Any]) -> dict:
    slot, src = image["slot"], image["src"]
    _require(isinstance(slot, str) and bool(_SLOT.fullmatch(slot)),
             f"item {item_id!r}: slot {slot!r} must be letters or digits")
    _require(isinstance(src, str) and bool(_IMAGE_SRC.fullmatch(src)),
             f"item {item_id!r} slot {slot}: src must be a base64 data:image/jpeg URI")
    return {"slot": slot, "src": src}
