"""The strip lexicon: generic captions without cultural context (finetune/lexicon.py)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from ccub.config import load_config
from ccub.readers import read_submissions
from ccub.vocab import Vocabulary
from finetune.lexicon import FALLBACK, Lexicon, strip_caption

EXAMPLES = Path(__file__).parents[1] / "examples" / "submissions"
CULTURES = ("china", "india", "korea", "mexico", "nigeria")
URLS = re.compile(r"\S*(?:://|@|www\.)\S*")


@pytest.fixture(scope="module")
def cfg():
    return load_config(cwd=Path(__file__).parent)


@pytest.fixture(scope="module")
def lexicons(cfg):
    return {slug: Lexicon.for_culture(cfg.cultures[slug]) for slug in CULTURES}


@pytest.fixture(scope="module")
def example_captions(cfg):
    """(culture, caption) for every caption of the five cultures in the example submissions."""
    read = read_submissions(EXAMPLES, Vocabulary(cfg), {}, cfg.limits)
    pairs = [(r.culture, r.caption) for r in read.records if r.culture in CULTURES and r.caption]
    assert len({c for c, _ in pairs}) >= 3 and len(pairs) > 80
    return pairs


def fold(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def lexicon_terms(cfg, slug: str) -> list[str]:
    culture = cfg.cultures[slug]
    return [culture.name, culture.adjective, *culture.aliases, *culture.places, *culture.generic]


def terms_in(text: str, terms: list[str]) -> list[str]:
    """Terms found in `text` as whole words, case- and accent-insensitively (URLs masked)."""
    text = fold(URLS.sub(" ", text))
    return [t for t in terms if re.search(rf"(?<!\w){re.escape(fold(t))}(?!\w)", text, re.I)]


# --- real captions, exact outputs -----------------------------------------------------------

CASES = [
    ("korea", "a girl wearing Korean traditional clothing hanbok", "a girl wearing traditional clothing"),
    ("korea", "A plate of tteokbokki covered in spicy red sauce on a street stall in Seoul",
     "A plate of rice cakes covered in spicy red sauce on a street stall"),
    ("korea", "A woman in a pink and navy hanbok walking through Gyeongbokgung Palace",
     "A woman in a pink and navy traditional dress walking through a palace"),
    ("korea", "Songpyeon rice cakes steamed on pine needles for Chuseok",
     "Rice cakes steamed on pine needles for a harvest festival"),
    ("korea", "Gat, the traditional black horsehair hat, displayed at a craftsman's workshop",
     "The traditional black horsehair hat, displayed at a craftsman's workshop"),
    ("korea", "Busan's Gamcheon Culture Village with pastel houses stacked up the hillside",
     "A hillside village with pastel houses stacked up the hillside"),
    ("korea", "Traditional hanok houses with curved tiled roofs in Bukchon Hanok Village",
     "Traditional houses with curved tiled roofs in a village"),
    ("korea", "Naengmyeon buckwheat noodles in icy broth topped with sliced pear and half an egg",
     "Cold buckwheat noodles in icy broth topped with sliced pear and half an egg"),
    ("korea", "Buchaechum fan dancers in red and yellow hanbok forming a flower on stage",
     "Fan dancers in red and yellow traditional dress forming a flower on stage"),
    ("korea", "Sweet 호떡 pancakes with brown sugar and seeds from a cart in Nampo-dong, Busan",
     "Sweet 호떡 pancakes with brown sugar and seeds from a cart"),
    ("korea", "Gwanghwamun gate of Gyeongbokgung in the afternoon light", "Gate of a palace in the afternoon light"),
    ("nigeria", "Jollof rice with fried plantain served at a wedding in Lagos",
     "Tomato rice with fried plantain served at a wedding"),
    ("nigeria", "An Edo bride wearing coral bead necklaces and a beaded crown in Benin City",
     "A bride wearing coral bead necklaces and a beaded crown"),
    ("nigeria", "Nigerian party snacks served in small bowls", "Party snacks served in small bowls"),
    ("nigeria", "Women wearing gele head wraps at an owambe party", "Women wearing head wraps at a party"),
    ("nigeria", "Umbrellas over the packed lanes of Balogun market on Lagos Island",
     "Umbrellas over the packed lanes of a market"),
    ("nigeria", "Stilt houses and canoes in Makoko on the Lagos lagoon", "Stilt houses and canoes on the lagoon"),
    ("nigeria", "Zuma Rock seen from the Abuja-Kaduna expressway", "A large rock seen from the expressway"),
    ("nigeria", "A Hausa rider in an embroidered babban riga at the Durbar festival in Katsina",
     "A rider in an embroidered flowing robe at the horse festival"),
    ("nigeria", "Amala with ewedu and gbegiri soup at a buka in Ibadan",
     "Yam flour mash with jute leaf soup and bean soup at a roadside eatery"),
    ("nigeria", "Cathedral Church of Christ on Marina, Lagos Island", "Cathedral Church of Christ on Marina"),
    ("nigeria", "Chapman cocktail with cucumber and orange slices, recipe at https://example.com/chapman",
     "Fruit punch cocktail with cucumber and orange slices, recipe at https://example.com/chapman"),
    ("india", "Masala dosa with coconut chutney and sambar on a banana leaf in Chennai",
     "Rice crepe with coconut relish and lentil stew on a banana leaf"),
    ("india", "A Kanjeevaram silk saree with a gold zari border laid out in a shop in Kanchipuram",
     "A silk draped dress with a gold brocade border laid out in a shop"),
    ("india", "A steel thali with dal, rice, two sabzis, papad and mango pickle",
     "A steel platter with lentils, rice, two vegetable dishes, lentil wafer and mango pickle"),
    ("india", "Diyas lit along the ghats of Varanasi for Dev Deepawali",
     "Oil lamps lit along the riverside steps for a festival"),
    ("india", "The Taj Mahal reflected in the long pool of the Charbagh garden",
     "The white marble mausoleum reflected in the long pool of the formal garden"),
    ("india", "An Indian bride with mehndi on her hands", "A bride with henna on her hands"),
    ("china", "A woman in a red qipao walking along the Great Wall of China",
     "A woman in a red fitted dress walking along the ancient wall"),
    ("china", "A steaming basket of xiaolongbao in a Shanghai teahouse",
     "A steaming basket of soup dumplings in a teahouse"),
    ("mexico", "An ofrenda with calaveras and marigolds for Día de Muertos in Mexico City",
     "A home altar with decorated skulls and marigolds for a remembrance festival"),
    ("mexico", "A mariachi band playing in the Zocalo", "A folk band playing in the main square"),
]


@pytest.mark.parametrize(("slug", "caption", "expected"), CASES, ids=[c[1][:40] for c in CASES])
def test_real_captions(lexicons, slug, caption, expected):
    assert lexicons[slug].strip(caption) == expected


@pytest.mark.parametrize(("caption", "expected"), [
    ("Koreans celebrating Chuseok in Seoul", "People celebrating a harvest festival"),
    ("In Seoul, a woman in hanbok", "A woman in traditional dress"),  # leading place and comma
    ("the stew kimchi jjigae on a table", "the stew on a table"),  # apposition after a head noun
    ("tteokbokki tteokbokki", "rice cakes"),  # no doubled replacement
    ("Two hanboks on a rack", "Two traditional dresses on a rack"),  # plural term, plural wording
    ("A man visited Gyeongbokgung Palace", "A man visited a palace"),
    ("an old Gyeongbokgung Palace gate", "an old palace gate"),  # the caption's own article
    ("A Korean woman in a hanbok in Seoul.", "A woman in a traditional dress."),
])
def test_seams(lexicons, caption, expected):
    assert lexicons["korea"].strip(caption) == expected


# --- properties -----------------------------------------------------------------------------

def test_no_term_survives_in_the_example_captions(cfg, lexicons, example_captions):
    leaks = {}
    for slug, caption in example_captions:
        found = terms_in(lexicons[slug].strip(caption), lexicon_terms(cfg, slug))
        if found:
            leaks[caption] = found
    assert not leaks


def test_generic_wording_names_no_term(cfg):
    # Otherwise a second pass would rewrite the first one's output.
    for slug in CULTURES:
        culture = cfg.cultures[slug]
        terms = lexicon_terms(cfg, slug)
        bad = {k: v for k, v in culture.generic.items() if v and terms_in(v, terms)}
        assert not bad, slug


def test_lexicon_sizes(cfg):
    for slug in CULTURES:
        culture = cfg.cultures[slug]
        assert 25 <= len(culture.generic) <= 60, slug
        assert 15 <= len(culture.places) <= 40, slug


def test_stripping_is_idempotent(lexicons, example_captions):
    for slug, caption in example_captions:
        once = lexicons[slug].strip(caption)
        assert lexicons[slug].strip(once) == once, caption


@pytest.mark.parametrize("caption", ["Lagos", "Lagos Island, Nigeria", "in Lagos", "Nigerian", "the Yoruba", " , "])
def test_never_empty(lexicons, caption):
    assert lexicons["nigeria"].strip(caption).strip()


def test_never_empty_on_the_examples(lexicons, example_captions):
    assert all(lexicons[slug].strip(c).strip() for slug, c in example_captions if c.strip())


def test_fallback_keeps_the_capital(lexicons):
    assert lexicons["nigeria"].strip("Lagos") == FALLBACK.capitalize()
    assert lexicons["nigeria"].strip("the Yoruba") == FALLBACK


@pytest.mark.parametrize("caption", [
    "a city street at night with neon signs and people walking",
    "A  bowl of soup ,  on a table\n",  # odd spacing is kept when nothing is removed
    "Gates of the old city",  # "gat" is a term, "gates" is not its plural
    "IMG_1234",
])
def test_text_without_terms_is_unchanged(lexicons, caption):
    assert lexicons["korea"].strip(caption) == caption


def test_hangul_is_left_as_is(lexicons):
    for caption in ("광장시장 노점에서 파는 바삭한 빈대떡과 막걸리 한 사발", "경주 불국사의 다보탑과 석가탑"):
        assert lexicons["korea"].strip(caption) == caption


def test_urls_and_handles_are_not_rewritten(lexicons):
    caption = "Asun from @lagosfoodie, see www.lagos.example/suya or mail suya@example.com"
    assert lexicons["nigeria"].strip(caption) == (
        "Grilled goat meat from @lagosfoodie, see www.lagos.example/suya or mail suya@example.com")


def test_user_config_extends_the_shipped_lexicon(tmp_path):
    (tmp_path / "ccub.toml").write_text(
        '[cultures.korea]\nplaces = ["Seoul", "Mapo"]\n\n'
        '[cultures.korea.generic]\nhoddeok = "sweet pancakes"\nhanbok = "traditional costume"\n',
        encoding="utf-8")
    cfg = load_config(tmp_path / "ccub.toml")
    korea = cfg.cultures["korea"]
    assert "tteokbokki" in korea.generic and korea.places == ["Seoul", "Mapo"]
    # strip_caption, not Lexicon.strip with a literal: ruff takes that for str.strip (B005).
    caption = "Hoddeok and tteokbokki at a stall in Mapo"
    assert strip_caption(caption, korea) == "Sweet pancakes and rice cakes at a stall"
    assert strip_caption("a hanbok in South Korea", korea) == "a traditional costume"  # aliases still places
    assert Lexicon.for_culture(korea).terms["hanbok"] == "traditional costume"


def test_strip_caption_matches_the_lexicon(cfg, lexicons, example_captions):
    for slug, caption in example_captions[:20]:
        assert strip_caption(caption, cfg.cultures[slug]) == lexicons[slug].strip(caption)


def test_every_culture_without_lexicon_still_strips_its_name(cfg):
    assert strip_caption("Ghanaian kente cloth in Ghana", cfg.cultures["ghana"]) == "Kente cloth"
