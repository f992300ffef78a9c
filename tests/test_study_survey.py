"""The study survey: texts, the rendered page's safety, and the page itself in headless Chromium."""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import re
from datetime import datetime
from pathlib import Path

import browser
import pytest
from browser import (
    blocked_requests,
    click,
    complete_survey,
    consent,
    message,
    open_survey,
    page,
    rank_item,
    require_browser,
    set_rank,
    slots,
    wait_for,
    wait_for_download,
)
from PIL import Image

from benchmark.study.survey import QUESTIONS, load_texts, render_survey

COLOURS = ("#c0392b", "#27ae60", "#2980b9", "#f1c40f")
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")
CSV_COLUMNS = ["study_id", "participant", "item", "question", "ranking", "identifies", "affiliation", "consent",
               "started", "finished"]
HOSTILE_PROMPT = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2"> \u2028<!--'
BRACES_PROMPT = "{culture} {n} {slot} {{culture}} ${x}"
# A comma, quotes and non-ASCII text: the CSV must quote them, the JSON keep them.
DESCRIPTION = 'Born in Busan, "second generation" 부산'


def jpeg_uri(colour: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 36), colour).save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def study(n_items: int = 3, culture: str = "Korea", prompts: dict[str, str] | None = None, **overrides) -> dict:
    """A study data dict with `n_items` items of four plain-colour images (slots A-D)."""
    images = [{"slot": slot, "src": jpeg_uri(colour)} for slot, colour in zip("ABCD", COLOURS, strict=True)]
    ids = [f"i{n:03d}" for n in range(1, n_items + 1)]
    prompts = prompts or {}
    data = {
        "study_id": "3f2a9c1e0b7d",
        "title": f"ccub study: {culture}",
        "culture": culture,
        "smoke_run": False,
        "per_participant": 0,
        "texts": load_texts(culture),
        "questions": list(QUESTIONS),
        "items": [{"id": i, "prompt": prompts.get(i, f"Family is eating together, in {culture} ({i})"),
                   "images": images} for i in ids],
    }
    return data | overrides


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "survey.html"
    path.write_text(render_survey(data), encoding="utf-8")
    return path


def planted(item: str, prompt: str, question: str, shown: list[str]) -> list[str]:
    """A different, reproducible ranking per (item, question)."""
    return random.Random(f"{item}/{question}").sample(shown, len(shown))


def embedded_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


# ---- texts -------------------------------------------------------------------------------------


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value]


def test_default_texts_have_every_question_and_fill_the_culture():
    texts = load_texts("Korea")
    for question in QUESTIONS:
        entry = texts["questions"][question]
        for key in ("title", "help", "best", "worst", "name"):
            assert isinstance(entry[key], str) and entry[key].strip(), (question, key)
    assert not any("{culture}" in s for s in strings(texts))
    assert texts["affiliation_question"] == "Do you identify with the culture of Korea?"
    assert texts["title"] == "ccub study: Korea"
    assert "Korea" in texts["questions"]["representation"]["best"]
    assert texts["smoke_banner"].startswith("TEST STUDY: these images come from models with random weights")


def test_page_uses_only_texts_that_exist():
    source = (Path(__file__).parents[1] / "benchmark" / "study" / "survey.html").read_text(encoding="utf-8")
    used = set(re.findall(r"\bT\.(\w+)", source)) - {"questions"}
    used |= {f"affiliation_{value}" for value in ("yes", "no", "unsaid")}
    texts = load_texts("Korea")
    assert used - set(texts) == set()
    assert set(texts["questions"][QUESTIONS[0]]) == set(re.findall(r"\bq\.(\w+)", source)) | {"name"}


def test_override_replaces_keys_and_fills_the_culture(tmp_path: Path):
    override = tmp_path / "ko.toml"
    override.write_text('language = "ko"\nstart_button = "시작"\n'
                        '[questions.alignment]\nbest = "{culture}: 설명과 가장 잘 맞음"\n', encoding="utf-8")
    texts = load_texts("Korea", override)
    defaults = load_texts("Korea")
    assert texts["start_button"] == "시작"
    assert texts["questions"]["alignment"]["best"] == "Korea: 설명과 가장 잘 맞음"
    assert texts["questions"]["alignment"]["title"] == defaults["questions"]["alignment"]["title"]
    assert texts["next_button"] == defaults["next_button"]
    assert '<html lang="ko" dir="ltr">' in render_survey(study(texts=texts))


@pytest.mark.parametrize(("toml", "named"), [
    ('start_buton = "Go"\n', ["'start_buton'", "start_button", "next_button"]),
    ('[questions.alignment]\ntitel = "x"\n', ["'questions.alignment.titel'", "questions.alignment.title"]),
    ('[questions.beauty]\ntitle = "x"\n', ["'questions.beauty'", "questions.alignment"]),
])
def test_override_with_an_unknown_key_is_refused(tmp_path: Path, toml: str, named: list[str]):
    override = tmp_path / "texts.toml"
    override.write_text(toml, encoding="utf-8")
    with pytest.raises(ValueError, match="unknown") as error:
        load_texts("Korea", override)
    for word in [str(override), *named]:
        assert word in str(error.value)


@pytest.mark.parametrize("toml", ['consent = "one string, not paragraphs"\n', "next_button = 3\n",
                                  'questions = "x"\n', 'direction = "up"\n', 'language = "en\\" onload=\\""\n'])
def test_override_with_a_wrong_value_is_refused(tmp_path: Path, toml: str):
    override = tmp_path / "texts.toml"
    override.write_text(toml, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(override))):
        load_texts("Korea", override)


def test_missing_or_broken_override_is_refused(tmp_path: Path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        load_texts("Korea", missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("start_button = \n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(broken))):
        load_texts("Korea", broken)


# ---- the rendered page, without a browser --------------------------------------------------------


def test_hostile_texts_cannot_break_out_of_the_page():
    culture = '<b>Korea</b>&"'
    prompts = {"i001": HOSTILE_PROMPT, "i002": BRACES_PROMPT}
    data = study(culture=culture, prompts=prompts, title='</title><script>window.pwned=3</script>')
    html = render_survey(data)
    assert "</script><script>window.pwned" not in html
    assert "<img src=x" not in html and "<b>Korea" not in html and "</title><script>" not in html
    assert "\u2028" not in html and "<!--'" not in html
    # Exactly the template's own elements: the JSON blob and the page's script.
    assert html.count("</script>") == 2 and html.count("<title>") == 1
    embedded = embedded_data(html)
    assert [item["prompt"] for item in embedded["items"][:2]] == [HOSTILE_PROMPT, BRACES_PROMPT]
    assert embedded["culture"] == culture and embedded["title"] == data["title"]
    assert embedded["texts"]["affiliation_question"] == f"Do you identify with the culture of {culture}?"


def test_page_loads_nothing_from_the_network():
    prompts = {"i001": "A photo like https://example.org/x.jpg or HTTP://EXAMPLE.ORG"}
    html = render_survey(study(prompts=prompts))
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html
    assert "http://" not in html.lower() and "https://" not in html.lower()
    assert "url(" not in html and "@import" not in html
    # Broken up for scanners, whole again for the participant.
    assert embedded_data(html)["items"][0]["prompt"] == prompts["i001"]


def broken_slots(data: dict) -> None:
    data["items"][1]["images"] = data["items"][1]["images"][:3]


@pytest.mark.parametrize(("change", "error"), [
    (lambda d: d.update(questions=["alignment", "beauty"]), "unknown question 'beauty'"),
    (lambda d: d.update(questions=[]), "no questions"),
    (lambda d: d.update(items=[]), "no items"),
    (broken_slots, "has slots"),
    (lambda d: d["items"][0].update(images=d["items"][0]["images"][:1]), "has 1 images"),
    (lambda d: d["items"][0]["images"][0].update(src="https://example.org/a.jpg"), "data:image/jpeg"),
    (lambda d: d["items"][0]["images"][0].update(slot="A>B"), "slot 'A>B'"),
    (lambda d: d["items"][1].update(id="i001"), "same id"),
    (lambda d: d["items"][0].update(id="__proto__"), "'__proto__'"),
    (lambda d: d.update(study_id="../x"), "study_id"),
    (lambda d: d.update(per_participant=-1), "per_participant"),
])
def test_bad_study_data_is_refused(change, error: str):
    data = study()
    data["items"] = [dict(item, images=[dict(image) for image in item["images"]]) for item in data["items"]]
    change(data)
    with pytest.raises(ValueError, match=re.escape(error)):
        render_survey(data)


def test_a_missing_browser_skips_or_fails_when_required(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    assert "no-chromium" in browser.browser_problem()
    monkeypatch.delenv("CCUB_BROWSER_TESTS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_browser()
    monkeypatch.setenv("CCUB_BROWSER_TESTS", "required")
    with pytest.raises(pytest.fail.Exception, match="required"):
        require_browser()


# ---- the page in headless Chromium -----------------------------------------------------------------


def test_completed_survey_saves_the_planted_rankings(tmp_path: Path, driver, downloads: Path):
    data = study(n_items=3)
    html = write(tmp_path, data)
    saved = complete_survey(driver, html, downloads, planted, affiliation=("yes", DESCRIPTION))

    ids = [item["id"] for item in data["items"]]
    prompts = {item["id"]: item["prompt"] for item in data["items"]}
    assert set(saved) == {"format", "version", "study_id", "participant", "consent", "affiliation", "started",
                          "finished", "items_shown", "answers"}
    assert (saved["format"], saved["version"], saved["study_id"]) == ("ccub-study-response", 1, "3f2a9c1e0b7d")
    assert re.fullmatch(r"p-[0-9a-f]{16}", saved["participant"])
    assert saved["consent"] is True
    assert saved["affiliation"] == {"identifies": "yes", "description": DESCRIPTION}
    assert sorted(saved["items_shown"]) == ids
    started, finished = (datetime.fromisoformat(saved[k].replace("Z", "+00:00")) for k in ("started", "finished"))
    assert started.utcoffset().total_seconds() == 0 and started <= finished
    expected = [{"item": item, "question": question,
                 "ranking": planted(item, prompts[item], question, ["A", "B", "C", "D"])}
                for item in saved["items_shown"] for question in QUESTIONS]
    assert saved["answers"] == expected
    json_file = wait_for_download(downloads, ".json")
    assert json_file.name == f"ccub-study-3f2a9c1e0b7d-{saved['participant']}.json"

    csv_file = wait_for_download(downloads, ".csv")
    assert csv_file.name == json_file.name.replace(".json", ".csv")
    with csv_file.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == CSV_COLUMNS
    assert [(r["item"], r["question"], r["ranking"].split(">")) for r in rows] == [
        (a["item"], a["question"], a["ranking"]) for a in expected]
    fixed = {(r["study_id"], r["participant"], r["identifies"], r["affiliation"], r["consent"], r["started"],
              r["finished"]) for r in rows}
    assert fixed == {("3f2a9c1e0b7d", saved["participant"], "yes", DESCRIPTION, "true", saved["started"],
                      saved["finished"])}

    assert not driver.find_element("id", "banner").is_displayed()
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert [name for name in loaded if not name.startswith("data:")] == []


def test_the_policy_blocks_requests_in_the_browser(tmp_path: Path, driver):
    open_survey(driver, write(tmp_path, study()))
    assert blocked_requests(driver) == ["connect-src", "img-src"]


def test_next_refuses_an_incomplete_item_or_a_repeated_rank(tmp_path: Path, driver):
    texts = load_texts("Korea")
    names = {q: texts["questions"][q]["name"] for q in QUESTIONS}
    open_survey(driver, write(tmp_path, study()))

    click(driver, "start")
    assert page(driver) == ("consent", None) and message(driver) == texts["error_consent"]
    consent(driver, affiliation=None)
    _, first = page(driver)
    assert driver.find_element("id", "item-counter").text == "Item 1 of 3"
    assert driver.find_element("id", "message").get_attribute("role") == "alert"
    driver.find_element("css selector", 'button.zoom[data-slot="B"]').click()
    zoom = driver.find_element("id", "zoom")
    wait_for(driver, lambda d: zoom.get_attribute("open") is not None)
    assert driver.find_element("id", "zoom-image").get_attribute("src") == jpeg_uri(COLOURS[1])
    click(driver, "zoom-close")
    wait_for(driver, lambda d: zoom.get_attribute("open") is None)

    click(driver, "next")
    assert page(driver) == ("item", first)
    assert all(name in message(driver) for name in names.values())

    for question in QUESTIONS[:3]:
        rank_item(driver, question, ["D", "C", "B", "A"])
    for slot, rank in zip("ABCD", (1, 1, 3, 4), strict=True):
        set_rank(driver, "offensiveness", slot, rank)
    click(driver, "next")
    assert page(driver) == ("item", first)
    assert names["offensiveness"] in message(driver) and "rank 1 is used more than once" in message(driver)
    assert not any(names[q] in message(driver) for q in QUESTIONS[:3])
    marked = driver.find_element("css selector", 'select[data-question="offensiveness"][data-slot="B"]')
    assert marked.get_attribute("aria-invalid") == "true"

    set_rank(driver, "offensiveness", "B", 2)
    assert message(driver) == ""
    click(driver, "next")
    wait_for(driver, lambda d: page(d)[1] != first)
    assert driver.find_element("id", "item-counter").text == "Item 2 of 3"
    click(driver, "previous")
    wait_for(driver, lambda d: page(d)[1] == first)
    selected = {slot: driver.find_element("css selector", f'select[data-question="offensiveness"][data-slot="{slot}"]')
                .get_attribute("value") for slot in slots(driver)}
    assert selected == {"A": "1", "B": "2", "C": "3", "D": "4"}


def test_reopening_restores_progress_and_reset_forgets_it(tmp_path: Path, driver):
    html = write(tmp_path, study())
    open_survey(driver, html)
    consent(driver, affiliation=("no", ""))
    participant = driver.find_element("id", "participant").get_attribute("data-participant")
    for question in QUESTIONS:
        rank_item(driver, question, ["B", "A", "D", "C"])
    click(driver, "next")
    wait_for(driver, lambda d: driver.find_element("id", "item-counter").text == "Item 2 of 3")
    _, second = page(driver)
    set_rank(driver, "stereotypes", "C", 2)

    open_survey(driver, html)
    assert page(driver) == ("item", second)
    assert driver.find_element("id", "participant").get_attribute("data-participant") == participant
    restored = driver.find_element("css selector", 'select[data-question="stereotypes"][data-slot="C"]')
    assert restored.get_attribute("value") == "2"
    assert driver.find_element("id", "progress").get_attribute("value") == "1"

    click(driver, "previous")
    wait_for(driver, lambda d: page(d)[1] != second)
    click(driver, "previous")
    wait_for(driver, lambda d: page(d)[0] == "consent")
    assert driver.find_element("id", "consent").is_selected()
    assert driver.find_element("css selector", 'input[name="identifies"][value="no"]').is_selected()
    click(driver, "reset")
    driver.switch_to.alert.accept()
    wait_for(driver, lambda d: d.find_element("id", "participant").get_attribute("data-participant") != participant)
    assert not driver.find_element("id", "consent").is_selected()
    assert driver.execute_script("return localStorage.length") == 0


def test_each_participant_gets_per_participant_items(tmp_path: Path, driver, downloads: Path):
    data = study(n_items=4, per_participant=2, questions=["offensiveness", "alignment"])
    saved = complete_survey(driver, write(tmp_path, data), downloads, planted, affiliation=None, csv=False)
    assert len(saved["items_shown"]) == 2
    assert set(saved["items_shown"]) < {item["id"] for item in data["items"]}
    assert [(a["item"], a["question"]) for a in saved["answers"]] == [
        (item, question) for item in saved["items_shown"] for question in ("offensiveness", "alignment")]
    assert saved["affiliation"] == {"identifies": "unsaid", "description": ""}


def test_hostile_texts_are_shown_as_text(tmp_path: Path, driver):
    culture = '<b>Korea</b>&"'
    prompts = {"i001": HOSTILE_PROMPT, "i002": BRACES_PROMPT}
    data = study(n_items=2, culture=culture, prompts=prompts, smoke_run=True)
    open_survey(driver, write(tmp_path, data))
    banner = driver.find_element("id", "banner")
    assert banner.is_displayed() and banner.text.startswith("TEST STUDY")
    assert driver.find_element("id", "title").text == f"ccub study: {culture}"
    assert driver.title == f"ccub study: {culture}"
    assert f"Do you identify with the culture of {culture}?" in driver.find_element("id", "page").text
    consent(driver, affiliation=None)
    shown = set()
    while page(driver)[0] == "item":
        item = page(driver)[1]
        prompt = driver.execute_script("return document.getElementById('prompt').textContent")
        assert prompt == prompts[item]
        assert len(driver.find_elements("css selector", "#page img")) == 4
        assert driver.find_elements("css selector", "#page b, #page script, img[src='x']") == []
        shown.add(item)
        for question in QUESTIONS:
            rank_item(driver, question, ["A", "B", "C", "D"])
        click(driver, "next")
        wait_for(driver, lambda d, item=item: page(d)[1] != item)
    assert shown == set(prompts)
    assert driver.execute_script("return typeof window.pwned") == "undefined"


def test_saving_refuses_incomplete_items(tmp_path: Path, driver, downloads: Path):
    # Only an edited or stale saved state reaches the end page with gaps: make one.
    open_survey(driver, write(tmp_path, study()))
    consent(driver, affiliation=None)
    for question in QUESTIONS:
        rank_item(driver, question, ["A", "B", "C", "D"])
    driver.execute_script("""
        const key = "ccub-study:3f2a9c1e0b7d";
        const state = JSON.parse(localStorage.getItem(key));
        state.page = state.order.length;
        localStorage.setItem(key, JSON.stringify(state));
    """)
    driver.refresh()
    wait_for(driver, lambda d: page(d)[0] == "end")
    click(driver, "save-json")
    assert message(driver) == load_texts("Korea")["error_save_incomplete"].replace("{items}", "2, 3")
    assert not downloads.exists() or list(downloads.iterdir()) == []
