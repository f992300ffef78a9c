"""Build `examples/submissions/`: a small, deterministic community submission with planted problems.

Run `python examples/make_examples.py`. The folder is deleted and rebuilt; every byte depends only
on fixed seeds, fixed timestamps and the Pillow/numpy versions. Three cultures arrive in the three
layouts ccub reads (Hugging Face imagefolder, a culture/category folder tree, a CCUB-style
manifest). Most records are clean; the rest each carry one planted problem, listed in
`examples/README.md` and marked by a comment naming its check id below.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import unicodedata
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

HERE = Path(__file__).resolve().parent
OUT = HERE / "submissions"

QUALITY = 85
# Clean images keep this much fine detail (variance of the Laplacian on a 512 px copy, the
# statistic ccub's blur check reads), well above its warning threshold of 30.
MIN_DETAIL = 50.0
CLEAN_SIZES = ((640, 512), (683, 512), (512, 640), (576, 576))

# ---------------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------------

PALETTES = {
    # (sky/background top, horizon, ground) and the colours objects are drawn in.
    "food": ((92, 64, 46), (150, 112, 80), (70, 48, 36),
             ((210, 40, 30), (240, 200, 150), (250, 250, 240), (60, 140, 50), (230, 150, 40))),
    "arch": ((120, 170, 220), (200, 215, 230), (120, 110, 95),
             ((150, 40, 30), (60, 60, 70), (40, 110, 80), (220, 200, 160), (180, 90, 40))),
    "cloth": ((230, 225, 215), (200, 190, 175), (140, 120, 100),
              ((230, 80, 140), (30, 40, 110), (240, 200, 40), (200, 30, 40), (20, 120, 160))),
    "city": ((90, 130, 190), (190, 190, 200), (80, 80, 85),
             ((240, 200, 30), (200, 200, 210), (60, 60, 70), (220, 60, 40), (30, 90, 150))),
    "nature": ((110, 160, 215), (190, 210, 200), (60, 100, 50),
               ((200, 70, 30), (230, 160, 40), (40, 90, 40), (120, 80, 50), (90, 140, 60))),
}


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def detail(im: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian on a 512 px grey copy (as ccub measures blur)."""
    work = im.convert("RGB")
    work.thumbnail((512, 512), Image.Resampling.BILINEAR)
    rgb = np.asarray(work, dtype=np.float32)
    g = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def _jitter(rng: np.random.Generator, colour: tuple[int, ...], amount: int = 25) -> tuple:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _background(rng: np.random.Generator, w: int, h: int, scene: str) -> np.ndarray:
    top, mid, ground, _ = PALETTES[scene]
    horizon = rng.uniform(0.35, 0.6)
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    x = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :, None]
    top, mid, ground = (np.array(_jitter(rng, c), np.float32) for c in (top, mid, ground))
    upper = top + (mid - top) * (y / horizon)
    lower = mid * 0.8 + (ground - mid * 0.8) * np.clip((y - horizon) / (1 - horizon), 0, 1)
    base = np.where(y < horizon, upper, lower) + x * rng.uniform(-30, 30, 3).astype(np.float32)
    # Low-frequency blotches: light falloff, shadows, uneven surfaces.
    lo = rng.normal(128, 10, (max(2, h // 64), max(2, w // 64), 3)).clip(0, 255).astype(np.uint8)
    lo_up = Image.fromarray(lo).resize((w, h), Image.Resampling.BICUBIC)
    return base + np.asarray(lo_up, dtype=np.float32) - 128


def _objects(draw: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int, scene: str,
             count: int) -> None:
    colours = PALETTES[scene][3]
    for _ in range(count):
        colour = _jitter(rng, colours[rng.integers(len(colours))], 35)
        cx, cy = rng.uniform(0.05, 0.95) * w, rng.uniform(0.25, 0.95) * h
        sw, sh = rng.uniform(0.04, 0.25) * w, rng.uniform(0.04, 0.25) * h
        box = [cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2]
        kind = rng.integers(4)
        if scene == "food" and kind < 2:  # plates and bowls, with a rim
            draw.ellipse(box, fill=(235, 232, 225), outline=(120, 110, 100), width=3)
            inner = [box[0] + sw * 0.15, box[1] + sh * 0.15, box[2] - sw * 0.15, box[3] - sh * 0.15]
            draw.ellipse(inner, fill=colour)
        elif scene in ("arch", "city") and kind < 3:  # walls with windows, and a roof
            draw.rectangle(box, fill=colour)
            win = _jitter(rng, (40, 40, 50), 20)
            for wx in np.arange(box[0] + 6, box[2] - 10, 20):
                for wy in np.arange(box[1] + 6, box[3] - 10, 24):
                    draw.rectangle([wx, wy, wx + 6, wy + 9], fill=win)
            if scene == "arch":
                draw.polygon([(box[0] - 10, box[1]), ((box[0] + box[2]) / 2, box[1] - sh * 0.4),
                              (box[2] + 10, box[1])], fill=_jitter(rng, (50, 50, 55), 15))
        elif scene == "cloth" and kind < 2:  # patterned fabric
            draw.rectangle(box, fill=colour)
            stripe = _jitter(rng, colours[rng.integers(len(colours))], 30)
            for sx in np.arange(box[0], box[2], 10):
                draw.line([(sx, box[1]), (sx, box[3])], fill=stripe, width=3)
        elif kind == 3:
            points = [(cx + rng.uniform(-sw, sw) / 2, cy + rng.uniform(-sh, sh) / 2)
                      for _ in range(5)]
            draw.polygon(points, fill=colour)
        else:
            draw.ellipse(box, fill=colour)


def photo(name: str, size: tuple[int, int], scene: str = "food", noise: float = 0.8,
          min_detail: float = MIN_DETAIL) -> Image.Image:
    """A photo-like RGB picture: lit background, objects with edges and texture, sensor noise."""
    rng = np.random.default_rng(seed_of(name))
    w, h = size
    im = Image.fromarray(_background(rng, w, h, scene).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    _objects(draw, rng, w, h, scene, 5)
    for _ in range(12):  # add objects until the picture has enough fine detail
        if detail(im) >= min_detail:
            break
        _objects(draw, rng, w, h, scene, 3)
    im = im.filter(ImageFilter.GaussianBlur(0.4))  # lens softness
    arr = np.asarray(im, dtype=np.float32) + rng.normal(0, noise, (h, w, 1)).astype(np.float32)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def jpeg(im: Image.Image, quality: int = QUALITY, exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    im.save(out, "JPEG", quality=quality, optimize=True, **kwargs)
    return out.getvalue()


def png(im: Image.Image, **kwargs) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG", optimize=True, **kwargs)
    return out.getvalue()


def strip_app1(data: bytes) -> bytes:
    """The same JPEG without its APP1 (EXIF/XMP) segments: identical pixels, other bytes."""
    assert data[:2] == b"\xff\xd8"
    out, pos = bytearray(data[:2]), 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:  # up to start of scan
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if data[pos + 1] != 0xE1:
            out += data[pos:pos + 2 + length]
        pos += 2 + length
    return bytes(out + data[pos:])


def claim_pixels(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0 header so the JPEG claims width x height (a decompression-bomb header)."""
    pos = data.index(b"\xff\xc0")
    return (data[:pos + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big")
            + data[pos + 9:])


def exif_block(*, orientation: int | None = None, camera: bool = False,
               private: bool = False) -> bytes:
    exif = Image.Exif()
    if camera or private:
        exif[0x010F] = "samsung"  # Make
        exif[0x0110] = "Galaxy S23"  # Model
        exif[0x0132] = "2023:09:28 15:42:10"  # DateTime
        exif[0x0131] = "S918NKSU2BWI1"  # Software
    if orientation is not None:
        exif[0x0112] = orientation
    if private:
        exif[0x013B] = "Lee Seo-yeon"  # Artist
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "N", (37.0, 34.0, 11.52)  # GPSLatitude: Jongno, Seoul
        gps[3], gps[4] = "E", (126.0, 59.0, 2.76)
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = "2023:09:28 15:42:10"  # DateTimeOriginal
        sub[0xA431] = "R5CW30ABC1X"  # BodySerialNumber
    return exif.tobytes()


def clean_jpeg(name: str, scene: str, index: int = 0) -> bytes:
    return jpeg(photo(name, CLEAN_SIZES[index % len(CLEAN_SIZES)], scene))


def negative(name: str, scene: str) -> bytes:
    """A negative image (SCoFT stores generated pictures): smooth, 384 x 384 to save space."""
    im = photo("negative:" + name, (384, 384), scene, noise=0.5, min_detail=0)
    return jpeg(im.filter(ImageFilter.GaussianBlur(1.2)), quality=75)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def write(rel: str, data: bytes | str) -> None:
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def toml(rel: str, **values: str) -> None:
    write(rel, "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in values.items()))


def jsonl_line(row: dict) -> bytes:
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def csv_text(header: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Korea, contributor k-017: Hugging Face imagefolder with SCoFT negatives
# ---------------------------------------------------------------------------------------------

K017 = "korea-k017"
K017_CREATOR = "Kim Min-ji"
SCENES = {"FOOD": "food", "ARCH": "arch", "CLOTH": "cloth", "CITIES": "city"}

# (image stem, caption, language, blip_text, consent)
K017_CLEAN = [
    ("FOOD_1", "A plate of tteokbokki covered in spicy red sauce on a street stall in Seoul", "en",
     "a plate of food on a table", "n/a"),
    ("FOOD_2", "Bibimbap in a hot stone bowl with a raw egg yolk, spinach, bean sprouts and "
     "gochujang", "en", "a bowl of food with vegetables", "n/a"),
    ("FOOD_3", "Kimchi jjigae bubbling in a dented aluminium pot next to a bowl of white rice",
     "en", "a pot of soup on a table", "n/a"),
    ("FOOD_4", "광장시장 노점에서 파는 바삭한 빈대떡과 막걸리 한 사발", "ko",
     "a plate of pancakes and a bowl", "n/a"),
    ("FOOD_5", "Banchan side dishes of kimchi, pickled radish and seasoned spinach around a "
     "barbecue grill", "en", "a table with many small bowls of food", "n/a"),
    ("FOOD_6", "Songpyeon rice cakes steamed on pine needles for Chuseok", "en",
     "a plate of dumplings", "n/a"),
    ("ARCH_1", "The Geunjeongjeon throne hall of Gyeongbokgung Palace with its double-tiered roof",
     "en", "a large building with a roof", "n/a"),
    ("ARCH_2", "Traditional hanok houses with curved tiled roofs in Bukchon Hanok Village", "en",
     "houses on a street", "n/a"),
    ("ARCH_3", "경주 불국사의 다보탑과 석가탑", "ko", "a stone tower in front of a temple", "n/a"),
    ("ARCH_4", "Dancheong patterns painted in green, red and blue under the eaves of a temple",
     "en", "a colorful roof of a building", "n/a"),
    ("CLOTH_1", "A woman in a pink and navy hanbok walking through Gyeongbokgung Palace", "en",
     "a woman in a dress", "yes"),
    ("CLOTH_2", "A child's saekdong jeogori with rainbow striped sleeves worn for a first birthday",
     "en", "a child wearing a colorful jacket", "yes"),
    ("CLOTH_3", "Gat, the traditional black horsehair hat, displayed at a craftsman's workshop",
     "en", "a black hat on a table", "n/a"),
    ("CITIES_1", "Neon signs over a narrow alley of pojangmacha tents in Jongno", "en",
     "a street with signs", "n/a"),
    ("CITIES_2", "The Cheonggyecheon stream running between office towers in downtown Seoul",
     "en", "a river in a city", "n/a"),
    ("CITIES_3", "Busan's Gamcheon Culture Village with pastel houses stacked up the hillside",
     "en", "a hillside with houses", "n/a"),
]

LONG_CAPTION = (
    "Gwanghwamun, the main and largest gate of Gyeongbokgung Palace, photographed from the "
    "plaza on a clear autumn afternoon, with the stone haetae guardians on both sides, the "
    "royal guards in red and blue uniforms changing shifts in front of the three arched "
    "openings, Bugaksan mountain rising behind the curved double roof, tourists in rented "
    "hanbok taking pictures, and the glass towers of Sejong-daero reflecting the late sun on "
    "the right side of the frame"
)


def k017_row(stem: str, caption: str, language: str, blip: str, consent: str,
             suffix: str = ".jpg", negatives: bool = True, **overrides) -> dict:
    row = {"file_name": f"images/{stem}{suffix}", "text": caption, "license": "CC-BY-4.0",
           "creator": K017_CREATOR, "consent": consent, "language": language,
           "blip_text": blip}
    if negatives:
        row["negative_imgpath"] = [f"negatives/{stem}_0.jpg"]
    row.update(overrides)
    return row


def korea_k017() -> None:
    toml(f"{K017}/submission.toml", culture="korea", contributor="k-017", license="CC-BY-4.0",
         creator=K017_CREATOR)
    images, negatives = f"{K017}/train/images", f"{K017}/negatives"
    lines: list[bytes] = []

    def add(row: dict, data: bytes | None, negative_scene: str | None = None) -> None:
        lines.append(jsonl_line(row))
        if data is not None:
            write(f"{K017}/train/{row['file_name']}", data)
        if negative_scene:
            stem = Path(row["file_name"]).stem
            write(f"{negatives}/{stem}_0.jpg", negative(f"{K017}/{stem}", negative_scene))

    for i, (stem, caption, language, blip, consent) in enumerate(K017_CLEAN):
        scene = SCENES[stem.split("_")[0]]
        add(k017_row(stem, caption, language, blip, consent),
            clean_jpeg(f"{K017}/{stem}", scene, i), scene)

    # file.missing: the row names an image that was never uploaded.
    add(k017_row("FOOD_7", "Hotteok pancakes filled with brown sugar syrup at Namdaemun market",
                 "en", "pancakes on a griddle", "n/a", negatives=False), None)
    # metadata.duplicate_row: FOOD_2 listed a second time (the later row is skipped).
    add(k017_row("FOOD_2", "Dolsot bibimbap with crispy rice at the bottom of the stone bowl",
                 "en", "a bowl of food", "n/a", negatives=False), None)
    # metadata.malformed: a line cut off mid-object (FOOD_9.jpg then has no row).
    lines.append(b'{"file_name": "images/FOOD_9.jpg", "text": "Japchae glass noodles stir-fried '
                 b'with spinach, carrot and beef", "license": "CC-BY-4.0"\n')
    write(f"{images}/FOOD_9.jpg", clean_jpeg(f"{K017}/FOOD_9", "food", 1))
    # metadata.encoding: a line saved as Latin-1 ("caf\xe9"; ARCH_5.jpg then has no row).
    lines.append(b'{"file_name": "images/ARCH_5.jpg", "text": "A hanok tea caf\xe9 in Insadong '
                 b'with paper lanterns over the courtyard", "license": "CC-BY-4.0"}\n')
    write(f"{images}/ARCH_5.jpg", clean_jpeg(f"{K017}/ARCH_5", "arch", 2))
    # file.no_metadata: an uploaded image without any row.
    write(f"{images}/FOOD_8.jpg", clean_jpeg(f"{K017}/FOOD_8", "food", 3))
    # file.outside_root: a file_name climbing out of the submissions folder.
    add(k017_row("x", "Kimbap rolls sliced on a cutting board for a school picnic", "en",
                 "sushi on a board", "n/a", negatives=False,
                 file_name="../../../etc/passwd"), None)
    # caption.machine: the caption is the BLIP caption.
    add(k017_row("CITIES_4", "a city street at night with neon signs and people walking", "en",
                 "a city street at night with neon signs and people walking", "n/a"),
        clean_jpeg(f"{K017}/CITIES_4", "city", 0), "city")
    # caption.language: declared Korean, written in English.
    add(k017_row("CLOTH_4", "Norigae tassels in red and gold hanging from the ribbon of a hanbok "
                 "jacket, which my aunt made by hand", "ko", "a red tassel", "n/a"),
        clean_jpeg(f"{K017}/CLOTH_4", "cloth", 1), "cloth")
    # rights.license_not_allowed: a non-commercial licence.
    add(k017_row("FOOD_10", "Samgyeopsal pork belly sizzling on a round grill with garlic and "
                 "green chilli", "en", "meat on a grill", "n/a", license="CC-BY-NC-4.0"),
        clean_jpeg(f"{K017}/FOOD_10", "food", 2), "food")
    # rights.consent_refused: the person shown withdrew consent.
    add(k017_row("CLOTH_5", "A bride in a red wonsam robe and jokduri crown at a traditional "
                 "wedding ceremony", "en", "a woman in a red dress", "withdrawn"),
        clean_jpeg(f"{K017}/CLOTH_5", "cloth", 2), "cloth")
    # negatives.invalid: the negative image was never uploaded.
    add(k017_row("ARCH_6", "Suwon Hwaseong fortress wall winding over the hill at dusk", "en",
                 "a stone wall on a hill", "n/a"), clean_jpeg(f"{K017}/ARCH_6", "arch", 3))
    # caption.unicode: a BEL control character and decomposed (NFD) Hangul.
    add(k017_row("FOOD_11", "Sweet \u0007" + unicodedata.normalize("NFD", "호떡")
                 + " pancakes with brown sugar and seeds from a cart in Nampo-dong, Busan",
                 "en", "pancakes on a plate", "n/a"),
        clean_jpeg(f"{K017}/FOOD_11", "food", 0), "food")
    # caption.clip_tokens: more CLIP tokens than Stable Diffusion reads.
    add(k017_row("ARCH_7", LONG_CAPTION, "en", "a large gate with a roof", "n/a"),
        clean_jpeg(f"{K017}/ARCH_7", "arch", 1), "arch")
    # image.orientation: a portrait photo stored sideways with EXIF orientation 6.
    upright = photo(f"{K017}/CLOTH_6", (512, 683), "cloth")
    add(k017_row("CLOTH_6", "Durumagi overcoats in muted silk hanging in a tailor's shop in "
                 "Gwangjang market", "en", "coats hanging on a rack", "n/a"),
        jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif_block(orientation=6)),
        "cloth")
    # privacy.location, privacy.device_serial, privacy.owner_name: a phone photo's EXIF.
    add(k017_row("CITIES_5", "Morning commuters crossing the Jongno intersection in front of "
                 "Bosingak pavilion", "en", "people crossing a street", "yes"),
        jpeg(photo(f"{K017}/CITIES_5", (683, 512), "city"), exif=exif_block(private=True)),
        "city")
    # duplicate.same_pixels: k-042 uploaded this picture again with its EXIF stripped.
    add(k017_row("ARCH_8", "Gwanghwamun gate of Gyeongbokgung in the afternoon light", "en",
                 "a large gate", "n/a"), GWANGHWAMUN, "arch")
    # duplicate.label_conflict: the same file is filed under nigeria/FOOD too.
    add(k017_row("FOOD_12", "Kimchi fried rice with a fried egg on top, made at home on a "
                 "Sunday", "en", "a plate of fried rice with an egg", "n/a"), FRIED_RICE, "food")
    # file.extension: a PNG (phone screenshot) named .jpg.
    screenshot = photo(f"{K017}/FOOD_13", (512, 640), "food", noise=0).quantize(64).convert("RGB")
    add(k017_row("FOOD_13", "Bungeoppang fish-shaped pastries filled with red bean paste in a "
                 "paper bag", "en", "a bag of bread", "n/a"), png(screenshot), "food")
    # file.undecodable: a JPEG signature followed by garbage.
    garbage = np.random.default_rng(seed_of("ARCH_9")).bytes(6000)
    add(k017_row("ARCH_9", "Changdeokgung's Secret Garden pavilion over the Buyongji pond", "en",
                 "a pavilion by a pond", "n/a"), b"\xff\xd8\xff\xe0" + garbage, "arch")
    # file.multi_frame: an animated PNG.
    frame = photo(f"{K017}/CITIES_6", (320, 256), "city", noise=0).quantize(32)
    frames = [frame.convert("RGB"), frame.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    add(k017_row("CITIES_6", "Light show projected on the Dongdaemun Design Plaza at night", "en",
                 "a building lit at night", "n/a", suffix=".png"),
        png(frames[0], save_all=True, append_images=frames[1:], duration=500, loop=0), "city")
    write(f"{K017}/train/metadata.jsonl", b"".join(lines))


# ---------------------------------------------------------------------------------------------
# Korea, contributor k-042: imagefolder without a split folder; culture from the path
# ---------------------------------------------------------------------------------------------

K042 = "korea/k-042"


def korea_k042() -> None:
    toml(f"{K042}/submission.toml", contributor="k-042", license="CC-BY-SA-4.0",
         creator="Park Jae-won")
    rows = [
        ("buchaechum.jpg", "Buchaechum fan dancers in red and yellow hanbok forming a flower on "
         "stage", "dance", "yes", "cloth"),
        ("lotus_lanterns.jpg", "Lotus lanterns strung over the courtyard of Jogyesa Temple for "
         "Buddha's Birthday", "festival", "n/a", "arch"),
        ("naejangsan.jpg", "Autumn maples around a wooden pavilion on Naejangsan mountain",
         "nature", "n/a", "nature"),
        ("celadon.jpg", "A Goryeo celadon vase with inlaid white cranes and clouds", "art", "n/a",
         "food"),
        ("bangjja.jpg", "A set of brass bangjja bowls and spoons laid out on a low wooden table",
         "utensils", "n/a", "food"),
        ("naengmyeon.jpg", "Naengmyeon buckwheat noodles in icy broth topped with sliced pear and "
         "half an egg", "food", "n/a", "food"),
        ("jeonju.jpg", "전주 한옥마을의 기와지붕과 골목길", "architecture", "n/a", "arch"),
    ]
    lines = []
    for i, (name, caption, category, consent, scene) in enumerate(rows):
        row = {"file_name": f"photos/{name}", "text": caption, "category": category,
               "consent": consent}
        if name == "jeonju.jpg":
            row["language"] = "ko"
        lines.append(jsonl_line(row))
        write(f"{K042}/photos/{name}", clean_jpeg(f"{K042}/{name}", scene, i))
    # duplicate.same_pixels: k-017's ARCH_8 with the APP1 (EXIF) segment removed.
    lines.append(jsonl_line({"file_name": "photos/gwanghwamun.jpg", "text": "Gwanghwamun, the "
                             "main gate of Gyeongbokgung Palace", "category": "ARCH",
                             "consent": "n/a"}))
    write(f"{K042}/photos/gwanghwamun.jpg", strip_app1(GWANGHWAMUN))
    # label.split_unknown: a split name ccub does not know.
    lines.append(jsonl_line({"file_name": "photos/haenyeo.jpg", "text": "Haenyeo divers' "
                             "orange floats drying on the rocks of Jeju", "category": "PEOPLE",
                             "consent": "n/a", "split": "dev"}))
    write(f"{K042}/photos/haenyeo.jpg", clean_jpeg(f"{K042}/haenyeo", "nature", 2))
    write(f"{K042}/metadata.jsonl", b"".join(lines))


# ---------------------------------------------------------------------------------------------
# Nigeria, contributor ng-104: folder tree with sidecar captions and one captions.csv
# ---------------------------------------------------------------------------------------------

NG = "nigeria"

NG_SIDECAR_CLEAN = {
    "FOOD": [
        ("jollof_1.jpg", "Jollof rice with fried plantain served at a wedding in Lagos"),
        ("suya.jpg", "Suya skewers of spicy grilled beef dusted with yaji pepper at a roadside "
         "grill in Kano"),
        ("egusi.jpg", "Egusi soup with pounded yam in an enamel bowl"),
        ("puff_puff.jpg", "Golden puff-puff in a plastic bowl at a roadside stand in Ibadan"),
        ("pepper_soup.jpg", "Goat meat pepper soup with uziza leaves in a clay pot"),
        ("moi_moi.jpg", "Moi moi steamed bean pudding wrapped in leaves for Sunday lunch in "
         "Enugu"),
        ("akara.jpg", "Akara bean fritters frying in palm oil in a wide iron pan"),
    ],
    "ARCH": [
        ("national_mosque.jpg", "Abuja National Mosque with its golden dome and four minarets"),
        ("osun_grove.jpg", "Carved shrine sculptures in the Osun-Osogbo Sacred Grove"),
        ("gidan_rumfa.jpg", "Mud walls of Gidan Rumfa, the Emir's palace in Kano, with "
         "decorated facade"),
        ("first_storey.jpg", "The First Storey Building in Badagry, built by missionaries in "
         "1845"),
    ],
    "CITIES": [
        ("third_mainland.jpg", "Third Mainland Bridge stretching across the Lagos lagoon at "
         "sunset"),
        ("danfo.jpg", "Yellow danfo buses queueing at the Oshodi bus terminal"),
        ("balogun.jpg", "Umbrellas over the packed lanes of Balogun market on Lagos Island"),
        ("abuja_gate.jpg", "The Abuja city gate arch on the airport road"),
        ("makoko.jpg", "Stilt houses and canoes in Makoko on the Lagos lagoon"),
    ],
}
NG_SCENES = {"FOOD": "food", "ARCH": "arch", "CITIES": "city", "CLOTH": "cloth"}

TOO_LONG = " ".join([
    "Kajuru Castle was built between 1981 and 1989 by a German expatriate living in Kaduna.",
    "It sits on a rocky hill above the village of Kajuru, about an hour's drive from Kaduna.",
    "The castle has towers, a dungeon, a drawbridge and a courtyard with a swimming pool.",
    "Today it is a holiday resort that groups of friends rent for weekends and weddings.",
    "We drove up from Kaduna on a Friday afternoon and arrived just before the sun went down.",
    "The road is rough for the last few kilometres, so a car with high clearance is best.",
    "Inside, the rooms are furnished like a medieval castle, with heavy wooden furniture.",
    "From the top of the tower you can see the hills around Kajuru and the farms below.",
] * 3)  # pasted from a blog post, three times: over 2,000 characters

NG_PLANTED = {
    # (folder, image, caption or None for no sidecar, how the image is made)
    "FOOD": [
        # label.prefix_mismatch: an ARCH_ file name in the FOOD folder.
        ("ARCH_2.jpg", "Amala with ewedu and gbegiri soup at a buka in Ibadan", "clean"),
        # duplicate.same_file: suya.jpg copied under another name.
        ("suya_copy.jpg", "Suya from the mallam near my house, sliced with onions and tomatoes",
         "copy:suya.jpg"),
        # duplicate.near: egusi.jpg resized, mirrored and re-encoded by a messaging app.
        ("egusi_whatsapp.jpg", "Egusi soup and pounded yam my aunt cooked on Sunday",
         "near:egusi.jpg"),
        # duplicate.near_review: moi_moi.jpg with 5% cut from the left (a crop).
        ("moi_moi_crop.jpg", "Moi moi wrapped in uma leaves, cut open to show the egg inside",
         "crop:moi_moi.jpg"),
        # duplicate.label_conflict: the same file as korea-k017 FOOD_12.
        ("fried_rice.jpg", "Nigerian fried rice with diced liver, carrots and green beans for "
         "Christmas", "fried_rice"),
        # caption.repeated: one caption on two different pictures.
        ("chin_chin.jpg", "Nigerian party snacks served in small bowls", "clean"),
        ("kilishi.jpg", "Nigerian party snacks served in small bowls", "clean"),
        # privacy.caption_email / caption_phone / caption_url / caption_handle.
        ("ofada.jpg", "Ofada rice with ayamase green pepper stew, order from "
         "ade.kitchen@example.com", "clean"),
        ("palm_wine.jpg", "Fresh palm wine in a calabash, call 0803 555 0142 to order a keg",
         "clean"),
        ("chapman.jpg", "Chapman cocktail with cucumber and orange slices, recipe at "
         "https://example.com/chapman", "clean"),
        ("asun.jpg", "Asun spicy goat meat from @lagosfoodie and her favourite spot in Ikeja",
         "clean"),
        # caption.missing: no sidecar caption file.
        ("ofe_nsala.jpg", None, "clean"),
        # file.tiny (and geometry.too_small): a 16 x 16 thumbnail.
        ("zobo_thumb.jpg", "Zobo hibiscus drink chilled in a glass jug", "tiny"),
    ],
    "ARCH": [
        # geometry.too_small: 200 x 150.
        ("zuma_rock.jpg", "Zuma Rock seen from the Abuja-Kaduna expressway", "200x150"),
        # geometry.small: 400 x 300.
        ("cathedral.jpg", "Cathedral Church of Christ on Marina, Lagos Island", "400x300"),
        # geometry.aspect: 1664 x 520 (3.2 : 1).
        ("kano_walls.jpg", "Panoramic view of the ancient earthen walls of Kano city", "1664x520"),
        # quality.blurry: heavily out of focus.
        ("benin_moat.jpg", "Grassy banks of the old Benin City moat earthworks", "blurry"),
        # file.format: a text message saved with a .jpg name.
        ("olumo_rock.jpg", "Olumo Rock in Abeokuta with the stairs cut into the granite", "text"),
        # file.truncated: the upload stopped half way.
        ("kajuru_castle.jpg", "Kajuru Castle on its rocky hill above the village, near Kaduna",
         "truncated"),
        # caption.too_long: a blog post pasted as the caption.
        ("kajuru_tower.jpg", TOO_LONG, "clean"),
    ],
    "CITIES": [
        # geometry.aspect_extreme: a 2080 x 512 panorama (4.06 : 1).
        ("lagos_panorama.jpg", "Panorama of the Lagos Island skyline from the Third Mainland "
         "Bridge", "2080x512"),
        # quality.dark: a street at night during a power cut.
        ("night_street.jpg", "A street in Surulere at night during a power cut, lit only by "
         "kiosk lamps", "dark"),
        # quality.overexposed: a blown-out sky.
        ("lekki_beach.jpg", "Lekki beach under the harsh midday sun", "overexposed"),
        # quality.low_information: harmattan haze, almost uniform.
        ("harmattan.jpg", "Harmattan haze hiding the skyline of Kaduna in December",
         "uniform"),
        # caption.placeholder.
        ("IMG_1234.jpg", "IMG_1234", "clean"),
        # caption.too_short: two words.
        ("traffic.jpg", "Lagos traffic", "clean"),
        # duplicate.near + duplicate.category_conflict: FOOD/puff_puff.jpg with a white frame,
        # filed as a city scene.
        ("ibadan_roadside.jpg", "A roadside stand in Ibadan selling puff-puff to passers-by",
         "border:puff_puff.jpg"),
        # file.empty: a zero-byte upload.
        ("oshodi.jpg", "Oshodi interchange with buses and hawkers under the bridge", "empty"),
    ],
}

# captions.csv rows: file_name, caption, license, creator, consent (empty = not given).
NG_CLOTH = [
    ("gele.jpg", "Women wearing gele head wraps at an owambe party", "", "", "yes"),
    ("agbada.jpg", "A groom in a cream agbada with a matching fila cap at his introduction "
     "ceremony", "", "", "yes"),
    ("aso_oke.jpg", "Hand-woven aso oke strips drying on a line at a weaving workshop in Iseyin",
     "", "", "n/a"),
    ("ankara.jpg", "Ankara wax print fabrics stacked in a stall at Balogun market", "", "",
     "n/a"),
    ("coral_beads.jpg", "An Edo bride wearing coral bead necklaces and a beaded crown in Benin "
     "City", "", "", "yes"),
    ("babban_riga.jpg", "A Hausa rider in an embroidered babban riga at the Durbar festival in "
     "Katsina", "CC-BY-SA-4.0", "Musa Abdullahi", "yes"),
    # rights.consent_missing: people category, consent left empty.
    ("isiagu.jpg", "Igbo chiefs in red caps and isiagu tops with lion-head patterns", "", "", ""),
    # rights.license_normalised: lower-case licence id.
    ("adire.jpg", "Indigo adire tie-dye cloth from Abeokuta hanging in the sun", "cc-by-4.0",
     "", "n/a"),
    # image.grayscale + image.colour: an old black-and-white portrait (mode L).
    ("iro_buba.jpg", "Black and white studio portrait of my grandmother in iro and buba, 1970s",
     "", "", "yes"),
    # image.colour: a cut-out PNG with transparency.
    ("ankara_pattern.png", "Cut-out of an Ankara print with orange and blue concentric circles",
     "", "", "n/a"),
    # image.colour: a CMYK JPEG scanned from a magazine.
    ("aso_ebi.jpg", "Magazine page showing aso ebi lace fabrics chosen for a wedding", "", "",
     "n/a"),
]


def special(name: str, how: str) -> bytes:
    """Image bytes for a planted problem (or a clean image)."""
    scene = NG_SCENES.get(name.split("/")[1], "food") if "/" in name else "food"
    if how == "clean":
        return clean_jpeg(name, scene, seed_of(name))
    if how == "tiny":
        return jpeg(photo(name, (16, 16), scene, min_detail=0), quality=70)
    if "x" in how and how.replace("x", "").isdigit():
        w, h = (int(v) for v in how.split("x"))
        # Wide panoramas are saved at a lower quality to keep the examples small.
        return jpeg(photo(name, (w, h), scene, min_detail=0), quality=85 if w < 1500 else 70)
    if how == "blurry":
        return jpeg(photo(name, (640, 512), scene).filter(ImageFilter.GaussianBlur(6)))
    if how == "text":
        return b"Sorry, the photo was too big for WhatsApp. I will send it by e-mail tomorrow.\n"
    if how == "truncated":
        data = clean_jpeg(name, scene)
        return data[: len(data) * 11 // 20]
    if how == "empty":
        return b""
    if how == "dark":
        im = photo(name, (683, 512), "city")
        arr = np.asarray(im, dtype=np.float32) * 0.12
        draw_im = Image.fromarray(arr.astype(np.uint8))
        draw = ImageDraw.Draw(draw_im)
        rng = np.random.default_rng(seed_of(name + "lamps"))
        for _ in range(12):  # kiosk lamps
            x, y = rng.uniform(0, 683), rng.uniform(250, 500)
            draw.ellipse([x, y, x + 6, y + 6], fill=(255, 230, 160))
        return jpeg(draw_im)
    if how == "overexposed":
        im = photo(name, (683, 512), "nature")
        arr = np.asarray(im, dtype=np.float32)
        arr[: int(512 * 0.62)] = 255  # the sky clips to white
        return jpeg(Image.fromarray(arr.astype(np.uint8)))
    if how == "uniform":
        rng = np.random.default_rng(seed_of(name))
        arr = np.empty((512, 683, 3), np.float32)
        arr[:] = (212, 200, 178)  # dusty haze, slightly warm
        arr += rng.normal(0, 0.6, (512, 683, 1))
        return jpeg(Image.fromarray(arr.clip(0, 255).astype(np.uint8)))
    if how.startswith("copy:"):
        return (OUT / NG / "FOOD" / how[5:]).read_bytes()
    if how.startswith(("near:", "crop:", "border:")):
        with Image.open(OUT / NG / "FOOD" / how.split(":", 1)[1]) as source:
            im = source.convert("RGB")
        if how.startswith("border:"):
            return jpeg(ImageOps.expand(im, im.width // 25, fill=(255, 255, 255)))
        if how.startswith("near:"):
            small = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.BILINEAR)
            return jpeg(small.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=60)
        return jpeg(im.crop((im.width // 20, 0, im.width, im.height)))
    if how == "fried_rice":
        return FRIED_RICE
    raise ValueError(how)


def nigeria() -> None:
    toml(f"{NG}/submission.toml", contributor="ng-104", license="CC-BY-4.0",
         creator="Adaeze Okafor")
    for folder, items in NG_SIDECAR_CLEAN.items():
        for i, (image, caption) in enumerate(items):
            write(f"{NG}/{folder}/{image}", clean_jpeg(f"{NG}/{folder}/{image}",
                                                       NG_SCENES[folder], i))
            # One contributor names sidecars image.jpg.txt, the rest image.txt.
            sidecar = image + ".txt" if image == "akara.jpg" else Path(image).stem + ".txt"
            write(f"{NG}/{folder}/{sidecar}", caption + "\n")
    for folder, items in NG_PLANTED.items():
        for image, caption, how in items:
            write(f"{NG}/{folder}/{image}", special(f"{NG}/{folder}/{image}", how))
            if caption is not None:
                write(f"{NG}/{folder}/{Path(image).stem}.txt", caption + "\n")

    rows = []
    for i, (image, caption, license_id, creator, consent) in enumerate(NG_CLOTH):
        rows.append({"file_name": image, "caption": caption, "license": license_id,
                     "creator": creator, "consent": consent})
        name = f"{NG}/CLOTH/{image}"
        if image == "iro_buba.jpg":
            data = jpeg(photo(name, (512, 640), "cloth").convert("L"))
        elif image == "ankara_pattern.png":
            data = png(cutout(name))
        elif image == "aso_ebi.jpg":
            data = jpeg(photo(name, (640, 512), "cloth").convert("CMYK"), quality=75)
        else:
            data = clean_jpeg(name, "cloth", i)
        write(name, data)
    write(f"{NG}/CLOTH/captions.csv",
          csv_text(["file_name", "caption", "license", "creator", "consent"], rows))
    # label.category_missing: a picture filed directly under nigeria/, no category anywhere.
    write(f"{NG}/owambe_table.jpg", clean_jpeg(f"{NG}/owambe_table.jpg", "food", 2))
    write(f"{NG}/owambe_table.txt", "Souvenir plates and gift bags laid out on a table before "
          "an owambe\n")


def cutout(name: str) -> Image.Image:
    """An RGBA picture with a transparent background: concentric gradient circles."""
    w, h = 640, 512
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed_of(name))
    rgba = np.zeros((h, w, 4), np.float32)
    for cx, cy, r in ((200, 220, 170), (450, 300, 190), (330, 120, 100)):
        cx, cy = cx + rng.uniform(-10, 10), cy + rng.uniform(-10, 10)
        d = np.hypot(x - cx, y - cy)
        inside = d < r
        ring = (d // 22) % 2 == 0
        shade = 1 - np.floor(d / 11) * 11 / (r * 1.6)  # stepped shading compresses well
        colour = np.where(ring[..., None], [240, 120, 30], [30, 70, 170]) * shade[..., None]
        rgba[inside, :3] = colour[inside]
        rgba[inside, 3] = 255
    return Image.fromarray(rgba.clip(0, 255).astype(np.uint8), "RGBA")


# ---------------------------------------------------------------------------------------------
# Atlantis: a culture that is not in the vocabulary
# ---------------------------------------------------------------------------------------------


def atlantis() -> None:
    toml("atlantis/submission.toml", culture="atlantis", contributor="x-001", license="CC0-1.0")
    write("atlantis/FOOD/sea_cake.jpg", clean_jpeg("atlantis/FOOD/sea_cake.jpg", "food", 1))
    write("atlantis/FOOD/sea_cake.txt", "A sea-salt honey cake served at the harbour festival "
          "of Poseidonis\n")


# ---------------------------------------------------------------------------------------------
# India: a manifest in the style of the public CCUB release
# ---------------------------------------------------------------------------------------------

MANIFEST_COLUMNS = ["country_code", "category_code", "path", "url", "caption", "created_at",
                    "license", "creator", "contributor", "consent"]
IN_CREATOR = "Priya Raman"


def manifest_row(code: str, category: str, path: str, caption: str, created: str, **kw) -> dict:
    row = {"country_code": code, "category_code": category, "path": path, "url": "",
           "caption": caption, "created_at": created, "license": "CC-BY-4.0",
           "creator": IN_CREATOR, "contributor": "in-003", "consent": "n/a"}
    row.update(kw)
    return row


def india() -> None:
    rows, images = [], []
    clean = [
        ("ARCH", "ARCH_1.jpg", "The Hawa Mahal in Jaipur with its pink sandstone honeycomb of "
         "windows", "arch"),
        ("FOOD", "FOOD_1.jpg", "Masala dosa with coconut chutney and sambar on a banana leaf in "
         "Chennai", "food"),
        ("CLOTH", "CLOTH_1.jpg", "A Kanjeevaram silk saree with a gold zari border laid out in "
         "a shop in Kanchipuram", "cloth"),
        ("CITIES", "CITIES_1.jpg", "Yellow and black auto rickshaws outside Chhatrapati Shivaji "
         "Terminus in Mumbai", "city"),
        ("FOOD", "FOOD_2.jpg", "A steel thali with dal, rice, two sabzis, papad and mango pickle",
         "food"),
    ]
    for day, (category, name, caption, scene) in enumerate(clean, start=1):
        rows.append(manifest_row("IND", category, f"india_images/{name}", caption,
                                 f"2023-07-{day:02d}T10:{day * 7:02d}:00Z"))
        images.append((name, clean_jpeg(f"india/{name}", scene, day)))
    planted = [
        # file.not_downloaded: only a URL.
        manifest_row("IND", "RELIG", "", "Diyas lit along the ghats of Varanasi for Dev "
                     "Deepawali", "2023-11-27T18:30:00Z",
                     url="https://example.org/ccub/IND/RELIG_3.jpg"),
        # file.outside_root: path traversal.
        manifest_row("IND", "ARCH", "../../etc/passwd", "The stepwell of Chand Baori in Abhaneri",
                     "2023-07-06T09:00:00Z"),
        # label.category_unknown.
        manifest_row("IND", "SPORTZ", "india_images/SPORTZ_1.jpg", "A kabaddi match on a dirt "
                     "court in a village in Haryana", "2023-07-07T16:00:00Z"),
        # label.culture_missing: no country_code, and nothing else names the culture.
        manifest_row("", "FOOD", "india_images/FOOD_3.jpg", "Masala chai poured from a height "
                     "into small clay cups at a tea stall", "2023-07-08T08:15:00Z"),
        # label.category_missing (kept, warning): no category_code and no prefix.
        manifest_row("IND", "", "india_images/rangoli_diwali.jpg", "A rangoli of coloured powder "
                     "and marigold petals outside a house for Diwali", "2023-11-12T07:45:00Z"),
        # rights.license_missing.
        manifest_row("IND", "ARCH", "india_images/ARCH_2.jpg", "The Meenakshi Amman temple "
                     "gopuram covered in painted figures in Madurai", "2023-07-09T11:00:00Z",
                     license=""),
        # rights.license_invalid: not an SPDX identifier.
        manifest_row("IND", "FOOD", "india_images/FOOD_4.jpg", "Hyderabadi biryani in a copper "
                     "handi sealed with dough", "2023-07-10T13:20:00Z",
                     license="All rights reserved"),
        # rights.attribution_missing: CC-BY but no creator.
        manifest_row("IND", "CITIES", "india_images/CITIES_2.jpg", "Houseboats moored on Dal "
                     "Lake in Srinagar in the early morning", "2023-07-11T06:40:00Z", creator=""),
        # file.too_many_pixels: the header claims 12000 x 10000 (120 MP).
        manifest_row("IND", "ARCH", "india_images/ARCH_3.jpg", "The Taj Mahal reflected in the "
                     "long pool of the Charbagh garden", "2023-07-12T07:00:00Z"),
    ]
    rows.extend(planted)
    images += [
        ("SPORTZ_1.jpg", clean_jpeg("india/SPORTZ_1.jpg", "nature", 0)),
        ("FOOD_3.jpg", clean_jpeg("india/FOOD_3.jpg", "food", 1)),
        ("rangoli_diwali.jpg", clean_jpeg("india/rangoli_diwali.jpg", "cloth", 2)),
        ("ARCH_2.jpg", clean_jpeg("india/ARCH_2.jpg", "arch", 3)),
        ("FOOD_4.jpg", clean_jpeg("india/FOOD_4.jpg", "food", 0)),
        ("CITIES_2.jpg", clean_jpeg("india/CITIES_2.jpg", "city", 1)),
        ("ARCH_3.jpg", claim_pixels(jpeg(photo("india/ARCH_3.jpg", (120, 100), "arch",
                                              min_detail=0)), 12000, 10000)),
    ]
    for name, data in images:
        write(f"india_images/{name}", data)
    write("india_manifest.csv", csv_text(MANIFEST_COLUMNS, rows))


# ---------------------------------------------------------------------------------------------

# Images shared between contributors (duplicates and label conflicts), built once.
GWANGHWAMUN = jpeg(photo("shared/gwanghwamun", (683, 512), "arch"), exif=exif_block(camera=True))
FRIED_RICE = clean_jpeg("shared/fried_rice", "food", 0)


# The steward's card file: what no tool can know about the collection (ccub reads it from
# the submissions folder when it writes the data cards).
CARD = """\
name = "ccub-examples"
pretty_name = "ccub example submissions (synthetic)"
description = \"\"\"Synthetic, photo-like example submissions for three cultures, made by
examples/make_examples.py to demonstrate ccub. The images are generated, not photographs:
do not train on them.\"\"\"
version = "0.1.0"
license = "CC-BY-4.0"
publication_date = "2026-11-29"
citation = \"\"\"@misc{ccub_examples,
  title = {ccub example submissions},
  author = {{ccub contributors}},
  year = {2026}
}\"\"\"
creators = ["ccub contributors"]
curators = ["ccub contributors"]
contact = "https://github.com/ccub/ccub/issues"
recruitment = "None: every record is synthetic; the contributor ids are invented."
compensation = "Not applicable (synthetic data)."
consent_wording = "Not applicable: no real person is shown."
withdrawal = "Not applicable; regenerate the set with examples/make_examples.py."
caption_authors = "Written by the ccub developers in the style of community captions."
intended_uses = "Trying ccub validate and testing the tool."
out_of_scope_uses = "Training or evaluating any model: the images are synthetic."
known_gaps = "Tiny and synthetic; most categories have a handful of images."
biases = "Captions were written by the tool's developers, not by members of each culture."
maintenance = "Regenerated with each ccub release."
tags = ["synthetic", "example"]
"""


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    korea_k017()
    korea_k042()
    nigeria()
    atlantis()
    india()
    write("card.toml", CARD)
    files = [p for p in OUT.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files)} files, {total / 1e6:.2f} MB, to {OUT}")


if __name__ == "__main__":
    main()
