"""Benchmark prompt suites, identification texts and the framing lexicon (benchmark/prompts.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark.prompts import (
    IDENTIFICATION_TEMPLATES,
    NEIGHBOURS,
    Prompt,
    builtin_suite,
    derive_generic,
    framing_texts,
    identification_classes,
    identification_texts,
    load_framings,
    load_suite,
    suite_for,
)
from ccub.config import load_config

CCUB = ("china", "india", "korea", "mexico", "nigeria")
CATEGORIES = {"ARCH", "CITIES", "CLOTH", "FOOD", "DANCE", "PEOPLE", "RELIG", "ART", "NATURE", "UTEN"}
# The study's example prompts (with the vocabulary's names filled in) and their cultures.
STUDY = {
    "korea": ["Family is eating together, in South Korea", "A table of food in South Korea"],
    "india": ["People wearing traditional clothing, in India"],
    "nigeria": ["Photo of a street, in Nigeria"],
    "mexico": ["University student studying, in Mexico"],
}
# Dehumanising epithets for people; the framing lexicon describes scenes and must use none.
EPITHETS = ("savage", "savages", "barbarian", "barbarians", "barbaric", "uncivilised", "uncivilized", "heathen",
            "heathens", "natives", "tribesmen", "primitives", "peasants", "vagrants", "beggars", "thugs",
            "illegals", "aliens", "subhuman")


@pytest.fixture(scope="module")
def cfg():
    return load_config(cwd=Path(__file__).parent)


def words(text: str) -> set[str]:
    return set(re.findall(r"[\w'-]+", text.lower()))


def names_culture(text: str, name: str, adjective: str) -> bool:
    lowered = text.lower()
    return name.lower() in lowered or adjective.lower() in lowered


@pytest.mark.parametrize("culture", CCUB)
def test_builtin_suite_covers_ccub(cfg, culture):
    suite = builtin_suite(culture, cfg)
    entry = cfg.cultures[culture]
    assert {p.category for p in suite} == CATEGORIES
    assert len({p.id for p in suite}) == len(suite)
    assert all(p.id.startswith(f"{culture}/{p.category}/") for p in suite)
    assert all(p.culture == culture and p.source == "builtin" for p in suite)
    for p in suite:
        assert "{" not in p.text and "}" not in p.text and "{" not in p.generic, p.id
        assert entry.name in p.text, p.id
        assert not names_culture(p.generic, entry.name, entry.adjective), p.id
        assert not names_culture(p.generic, culture.replace("-", " "), entry.adjective), p.id
        assert p.generic and p.generic != p.text
    templates = {p.id.split("/")[2] for p in builtin_suite("ghana", cfg)}
    extras = [p for p in suite if p.id.split("/")[2] not in templates]
    assert 6 <= len(extras) <= 10 and len(suite) == len(templates) + len(extras)
    held_out = [p for p in suite if p.held_out]
    assert held_out and all(p in extras for p in held_out)


def test_study_prompts_present(cfg):
    for culture, texts in STUDY.items():
        suite = {p.text for p in builtin_suite(culture, cfg)}
        for text in texts:
            assert text in suite, (culture, text)


def test_korea_held_out_names_jesa(cfg):
    held = [p for p in builtin_suite("korea", cfg) if p.held_out]
    jesa = [p for p in held if "jesa" in p.text.lower()]
    assert jesa and jesa[0].category == "RELIG" and "jesa" not in jesa[0].generic.lower()


def test_non_ccub_culture_gets_templates(cfg):
    ghana = builtin_suite("ghana", cfg)
    korea = builtin_suite("korea", cfg)
    assert {p.category for p in ghana} == CATEGORIES
    assert not any(p.held_out for p in ghana)
    assert all(p.text.endswith("Ghana") for p in ghana)
    shared = {p.id.split("/", 1)[1] for p in korea} & {p.id.split("/", 1)[1] for p in ghana}
    assert len(shared) == len(ghana)
    # Names and ISO codes resolve like slugs.
    assert builtin_suite("Ghana", cfg) == ghana == builtin_suite("GHA", cfg)


def test_unknown_culture_lists_known(cfg):
    with pytest.raises(ValueError, match="unknown culture 'atlantis'.*korea"):
        builtin_suite("atlantis", cfg)


def test_load_suite_toml(cfg, tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text(
        '[[prompt]]\nculture = "Korea"\ncategory = "food"\ntext = "A bowl of naengmyeon in Korea"\n'
        'held_out = true\n\n'
        '[[prompt]]\nculture = "MEX"\ncategory = "Clothing"\ntext = "Mexican embroidered blouses, in Mexico"\n'
        'generic = "Embroidered blouses"\nid = "my-blouses"\n\n'
        '[[prompt]]\nculture = "korea"\ncategory = "ARCH"\ntext = "A palace gate, in the Republic of Korea"\n',
        "utf-8",
    )
    suite = load_suite(path, cfg)
    assert [p.culture for p in suite] == ["korea", "mexico", "korea"]
    assert [p.category for p in suite] == ["FOOD", "CLOTH", "ARCH"]
    assert suite[0].generic == "A bowl of naengmyeon" and suite[0].held_out
    assert suite[0].id == "korea/FOOD/a-bowl-of-naengmyeon-in-korea"
    assert suite[1] == Prompt("my-blouses", "mexico", "CLOTH", "Mexican embroidered blouses, in Mexico",
                              "Embroidered blouses", False, str(path))
    assert suite[2].generic == "A palace gate"
    assert [p.id for p in suite_for("South Korea", path, cfg)] == [suite[0].id, suite[2].id]
    assert suite_for(None, path, cfg) == suite
    with pytest.raises(ValueError, match="no prompts for culture 'india'.*korea, mexico"):
        suite_for("india", path, cfg)


def test_load_suite_csv(cfg, tmp_path):
    path = tmp_path / "suite.csv"
    path.write_text(
        "Culture,Category,Prompt,generic,held_out,notes\n"
        "Korea,food,A table of food in Korea,,,from the study\n"
        'Nigerian,cities,"Photo of a street, in Nigeria",,no,\n'
        "\n"
        "India,PEOPLE,Indian students at a library,,yes,\n"
        "Korea,food,A table of food in Korea,,,\n",
        "utf-8",
    )
    suite = load_suite(path, cfg)
    assert [(p.culture, p.category) for p in suite] == [("korea", "FOOD"), ("nigeria", "CITIES"),
                                                          ("india", "PEOPLE"), ("korea", "FOOD")]
    assert [p.generic for p in suite] == ["A table of food", "Photo of a street", "Students at a library",
                                          "A table of food"]
    assert [p.held_out for p in suite] == [False, False, True, False]
    assert suite[0].id == "korea/FOOD/a-table-of-food-in-korea"
    assert suite[3].id == "korea/FOOD/a-table-of-food-in-korea-2"
    assert suite_for("korea", None, cfg) == builtin_suite("korea", cfg)


@pytest.mark.parametrize(("row", "message"), [
    ("Atlantis,food,A meal in Atlantis,,", r"line 2: `culture` 'Atlantis' is not in the vocabulary"),
    ("Korea,sports,A football match in Korea,,", r"line 2: `category` 'sports' is not a CCUB category"),
    ("Korea,food,,,", r"line 2: `text` is missing"),
    ("Korea,food,Korea's favourite breakfast,,", r"line 2: `generic` is missing and cannot derive.*give a `generic`"),
    ("Korea,food,A meal in Korea,,maybe", r"line 2: `held_out` is 'maybe'; use true or false"),
])
def test_bad_csv_rows(cfg, tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"culture,category,text,generic,held_out\n{row}\n", "utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_suite(path, cfg)
    assert str(path) in str(info.value)


def test_bad_suite_files(cfg, tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text('[[prompt]]\nculture = "Korea"\ncategory = "food"\ntext = "A meal in Korea"\n\n'
                    '[[prompt]]\nculture = "Korea"\ncategory = "food"\ntxet = "A meal in Korea"\n', "utf-8")
    with pytest.raises(ValueError, match=r"\[\[prompt\]\] #2: unknown field\(s\) txet"):
        load_suite(toml, cfg)
    toml.write_text('[[prompt]]\nculture = "Korea"\ncategory = "food"\ntext = "A meal"\nheld_out = "sure"\n', "utf-8")
    with pytest.raises(ValueError, match=r"#1: `held_out` is 'sure'"):
        load_suite(toml, cfg)
    toml.write_text('[[prompt]]\nculture = "Korea"\ncategory = "food"\ntext = "A"\nid = "x"\n\n'
                    '[[prompt]]\nculture = "Korea"\ncategory = "food"\ntext = "B"\nid = "x"\n', "utf-8")
    with pytest.raises(ValueError, match=r"#2: `id` 'x' is already used by \[\[prompt\]\] #1"):
        load_suite(toml, cfg)
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("culture,text\nKorea,A meal\n", "utf-8")
    with pytest.raises(ValueError, match="line 1: the header lacks column.*category"):
        load_suite(csv_path, cfg)
    with pytest.raises(ValueError, match="unsupported suite format .json"):
        load_suite(tmp_path / "suite.json", cfg)


def test_derive_generic(cfg):
    assert derive_generic("People wearing traditional clothing, in South Korea", "korea", cfg) == \
        "People wearing traditional clothing"
    assert derive_generic("Korean food at a market", "korea", cfg) == "Food at a market"
    assert derive_generic("Dancers from Nigeria on a stage", "nigeria", cfg) == "Dancers on a stage"
    assert derive_generic("A street in the United States at night", "united-states", cfg) == "A street at night"
    with pytest.raises(ValueError):
        derive_generic("Korean-style fried chicken", "korea", cfg)


def test_identification_classes(cfg):
    assert identification_classes("korea", cfg) == ["korea", "china", "japan", "taiwan", "mongolia"]
    assert identification_classes("India", cfg) == ["india", "pakistan", "bangladesh", "nepal", "sri-lanka"]
    assert identification_classes("ghana", cfg) == ["ghana", "nigeria"]
    for culture in CCUB:
        classes = identification_classes(culture, cfg)
        assert classes[0] == culture and len(classes) == len(set(classes)) >= 3
        assert all(c in cfg.cultures for c in classes)
        assert classes[1:] == list(NEIGHBOURS[culture])


def test_identification_texts(cfg):
    classes = identification_classes("nigeria", cfg)
    texts = identification_texts(classes, cfg)
    assert len(texts) == len(classes) and 6 <= len(IDENTIFICATION_TEMPLATES) <= 8
    for slug, class_texts in zip(classes, texts, strict=True):
        entry = cfg.cultures[slug]
        assert len(class_texts) == len(IDENTIFICATION_TEMPLATES) == len(set(class_texts))
        assert all("{" not in t and (entry.name in t or entry.adjective in t) for t in class_texts)
    assert "a photo from Niger" in texts[classes.index("niger")]


def test_framings(cfg):
    scene = "Family is eating together"
    degrading, neutral = framing_texts(scene)
    assert len(degrading) == len(neutral) == len(load_framings()) >= 8
    people = set(cfg.captions.people_words)
    for text in degrading + neutral:
        assert scene in text
        framing_words = words(text.replace(scene, ""))
        assert not framing_words & set(EPITHETS), text
        assert not framing_words & people, text  # framings describe scenes, never people
    for pair in load_framings():
        before_d, after_d = pair.degrading.split("{scene}")
        before_n, after_n = pair.neutral.split("{scene}")
        assert before_d == before_n, pair.id  # parallel structure
        assert len(after_d.split()) == len(after_n.split()), pair.id
    assert len({p.id for p in load_framings()}) == len(load_framings())


def test_framings_override(tmp_path):
    path = tmp_path / "framings.toml"
    path.write_text('[[pair]]\nid = "tidy"\ndegrading = "a messy {scene}"\nneutral = "a tidy {scene}"\n', "utf-8")
    framings = load_framings(path)
    assert framing_texts("kitchen", framings) == (["a messy kitchen"], ["a tidy kitchen"])
    path.write_text('[[pair]]\ndegrading = "a messy scene"\nneutral = "a tidy {scene}"\n', "utf-8")
    with pytest.raises(ValueError, match=r"#1: `degrading` must contain \{scene\} exactly once"):
        load_framings(path)
    path.write_text('[[pair]]\ndegrading = "a messy {scene}"\n', "utf-8")
    with pytest.raises(ValueError, match="`neutral` is missing"):
        load_framings(path)
