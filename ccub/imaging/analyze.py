"""Decode each image once and reduce it to the facts every check needs.

Runs in worker processes, so it returns plain data and writes its two by-products (the
metadata-free export candidate and a thumbnail) straight to the run's staging folder while
the pixels are in memory: nothing is decoded a second time later.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageCms, ImageOps, IptcImagePlugin

from ccub.imaging.decode import DecodeRefused, open_image
from ccub.imaging.phash import dihedral_phash
from ccub.imaging.strip import (
    Removed,
    Rewrite,
    StripError,
    png_text_keyword,
    rewrite,
    webp_is_lossless,
)
from ccub.imaging.verify import PixelCheck, pixel_key, verify_image
from ccub.safeio import Identity, Root, UnsafeFile

if TYPE_CHECKING:
    from ccub.config import Config

SUPPORTED = ("JPEG", "PNG", "WEBP")
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif",
                  ".tiff", ".heic", ".heif", ".avif"}
_SUFFIX_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
                  ".png": "PNG", ".webp": "WEBP"}

# Magic numbers of what people upload by mistake, to name it in the message.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP archive"),
)

_SRGB = ImageCms.createProfile("sRGB")
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_SERIAL_TAGS = (0xA431, 0xA435, 0xC62F)  # BodySerialNumber, LensSerialNumber, CameraSerialNumber
_OWNER_TAGS = (0xA430, 0x013B, 0x9C9D)  # CameraOwnerName, Artist, XPAuthor
_IPTC_LOCATION = ((2, 90), (2, 92), (2, 95), (2, 100), (2, 101))
_IPTC_OWNER = ((2, 80), (2, 118))  # By-line, Contact
_XMP_PATTERNS = {
    "location": re.compile(rb"GPSLatitude|GPSLongitude|Iptc4xmpCore:Location|photoshop:City"),
    "device_serial": re.compile(rb"SerialNumber"),
    "owner_name": re.compile(rb"OwnerName|dc:creator|photoshop:Credit|CreatorContactInfo"),
}
# A place in free text (comments, PNG text, private chunks): GPS followed by a number, the
# words latitude/longitude, a geo: URI, a decimal latitude/longitude pair, or degrees and
# minutes. Specific enough not to fire on binary data by chance.
_LOCATION_TEXT = re.compile(
    rb"GPS(?:Latitude|Longitude|Position)|\bGPS\s*[:=]?\s*[-+]?\d"
    rb"|(?i:\blatitude|\blongitude|\bgeo:\s*[-+]?\d)"
    rb"|\b\d{1,3}\.\d{3,}\s*(?:\xc2?\xb0)?\s*[NSns]?\s*[,;/ ]\s*[-+]?\d{1,3}\.\d{3,}"
    rb"|\b\d{1,3}\s*(?:\xc2?\xb0|deg)\s*\d{1,2}\s*(?:'|\xe2\x80\xb2)")
# Runs of text inside a block, searched instead of the whole block: the pattern above is
# slow on megabytes of binary data (an MPO's second picture, a private chunk).
_TEXT_RUN = re.compile(rb"[\t\n\r\x20-\x7e\xb0\xc2\xe2\x80\xb2]{8,}")
_OWNER_KEYWORDS = ("author", "artist", "owner")
# Removed blocks that are not text: Pillow parses EXIF and ICC itself, the rest are pixels.
_NOT_TEXT = {"APP1:Exif", "APP2:ICC_PROFILE", "APP2:MPF", "APP0:JFIF+thumbnail", "iCCP", "eXIf",
             "EXIF", "ICCP", "IDAT+data", "IEND+data"}
_XMP_BLOCKS = {"APP1:XMP": "XMP", "XMP ": "XMP", "APP1:extended XMP": "APP1 extended XMP"}
_SCAN_LIMIT = 256 << 10  # bytes of one removed block searched for personal data


@dataclass
class AnalysisLimits:
    """The settings one image's analysis needs, from the config's sections (`from_config`): plain
    values, so worker processes receive them cheaply."""

    max_bytes: int
    max_pixels: int
    work_size: int
    thumbnail_size: int
    jpeg_quality: int
    webp_quality: int
    trim_tolerance: float
    trim_max_fraction: float
    semantic_size: int  # side of the copy kept for CLIP embeddings; 0: none

    @classmethod
    def from_config(cls, cfg: Config, semantic: bool = False) -> AnalysisLimits:
        return cls(max_bytes=int(cfg.limits.max_file_mb * 1e6), max_pixels=int(cfg.limits.max_megapixels * 1e6),
                   work_size=cfg.quality.work_size, thumbnail_size=cfg.export.thumbnail_size,
                   jpeg_quality=cfg.export.jpeg_quality, webp_quality=cfg.export.webp_quality,
                   trim_tolerance=cfg.duplicates.trim_tolerance, trim_max_fraction=cfg.duplicates.trim_max_fraction,
                   semantic_size=cfg.duplicates.semantic_size if semantic else 0)


@dataclass
class ImageFacts:
    path: str
    identity: Identity | None = None  # the file that was read, to recognise it when re-read
    byte_size: int = 0
    sha256: str | None = None
    sniffed: str | None = None  # what the bytes are, by magic number
    format: str | None = None  # Pillow's format when it opened
    error: str | None = None  # check id of a fatal problem, with `error_detail`
    error_detail: str = ""
    width: int = 0  # after orientation
    height: int = 0
    mode: str = ""
    frames: int = 1
    orientation: int = 1
    icc: str | None = None  # profile description
    # Normalisations applied to the exported pixels: (kind, what was done).
    transforms: list[tuple[str, str]] = field(default_factory=list)
    privacy: dict[str, list[str]] = field(default_factory=dict)  # kind -> where found
    # Quality statistics of the working copy.
    mean: float = 0.0
    overexposed: float = 0.0
    laplacian_var: float = 0.0
    entropy: float = 0.0
    channel_delta: float = 0.0
    pixel_key: str | None = None  # identical decoded pixels give identical keys
    phash: bytes | None = None  # 8 dihedral variants x 256 bits (ccub.imaging.phash)
    margins: tuple[int, int, int, int] = (0, 0, 0, 0)  # trimmed before hashing, work scale
    content: float = 1.0  # share of the pixels inside the trimmed margins
    semantic_input: str | None = None  # small RGB copy for CLIP, when asked for
    decode_scale: int = 1  # JPEG draft reduction used for pixel_key
    # What the export leaves out of the file, for people ("APP1 Exif", "tEXt Comment");
    # None when the container could not be parsed (the image is re-encoded).
    removed: list[str] | None = None
    staged: str | None = None  # metadata-free export candidate
    staged_size: int = 0  # bytes of the staged copy, as verified
    export: str = ""  # "stripped" (lossless) or "re-encoded"
    thumbnail: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIC/AVIF"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "HTML page"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def suffix_format(path: str) -> str | None:
    return _SUFFIX_FORMAT.get(Path(path).suffix.lower())


def _fail(facts: ImageFacts, check: str, detail: str) -> ImageFacts:
    facts.error, facts.error_detail = check, detail
    return facts


def _privacy(im: Image.Image, removed: list[Removed] | None) -> dict[str, list[str]]:
    """Personal data in the metadata: Pillow's EXIF and IPTC, plus every removed block
    (XMP, extended XMP, comments, PNG text, private chunks, trailers). `where` names come
    from fixed vocabularies, never from the file."""
    found: dict[str, list[str]] = {}

    def note(kind: str, where: str) -> None:
        if where not in found.get(kind, []):
            found.setdefault(kind, []).append(where)

    exif = im.getexif()
    if exif:
        if exif.get_ifd(_GPS_IFD):
            note("location", "EXIF GPS")
        sub = exif.get_ifd(_EXIF_IFD)
        for tag in _SERIAL_TAGS:
            if sub.get(tag) or exif.get(tag):
                note("device_serial", "EXIF serial number")
                break
        for tag in _OWNER_TAGS:
            if sub.get(tag) or exif.get(tag):
                note("owner_name", "EXIF owner/artist")
                break
    xmp = im.info.get("xmp")
    if removed is None and isinstance(xmp, bytes | str):  # else read from the blocks below
        raw = xmp.encode() if isinstance(xmp, str) else xmp
        for kind, pattern in _XMP_PATTERNS.items():
            if pattern.search(raw):
                note(kind, "XMP")
    if im.format in ("JPEG", "MPO"):
        iptc = IptcImagePlugin.getiptcinfo(im) or {}
        if any(key in iptc for key in _IPTC_LOCATION):
            note("location", "IPTC location")
        if any(key in iptc for key in _IPTC_OWNER):
            note("owner_name", "IPTC by-line")
    for kind, places in _privacy_in_blocks(removed).items():
        for where in places:
            note(kind, where)
    return found


def _privacy_in_blocks(removed: list[Removed] | None) -> dict[str, list[str]]:
    """Personal data in the blocks the export leaves out, by content."""
    found: dict[str, list[str]] = {}

    def note(kind: str, where: str) -> None:
        if where not in found.get(kind, []):
            found.setdefault(kind, []).append(where)

    for item in removed or ():
        if item.name in _NOT_TEXT:
            continue
        if item.name in _XMP_BLOCKS:
            for kind, pattern in _XMP_PATTERNS.items():
                if pattern.search(item.content, 0, _SCAN_LIMIT):
                    note(kind, _XMP_BLOCKS[item.name])
        elif item.name in ("tEXt", "zTXt", "iTXt"):
            keyword, text = _png_text(item.name, item.content)
            where = f"PNG text ({keyword})" if keyword else "PNG text"
            if keyword and keyword.lower() in _OWNER_KEYWORDS:
                note("owner_name", where)
            patterns = _XMP_PATTERNS if keyword == "XML:com.adobe.xmp" else {
                "location": _LOCATION_TEXT}
            for kind, pattern in patterns.items():
                if pattern.search(text, 0, _SCAN_LIMIT):
                    note(kind, where)
            if keyword == "Location" and text.strip():
                note("location", where)
        elif any(_LOCATION_TEXT.search(run.group())
                 for run in _TEXT_RUN.finditer(item.content, 0, _SCAN_LIMIT)):
            note("location", {"COM comment": "JPEG comment"}.get(item.label, item.label))
    return found


def _inflate(data: bytes) -> bytes:
    """At most 1 MB of a zlib stream; b"" when it is not one."""
    try:
        return zlib.decompressobj().decompress(data, 1 << 20)
    except zlib.error:
        return b""


def _png_text(name: str, content: bytes) -> tuple[str | None, bytes]:
    """(keyword when a known one, text) of a tEXt, zTXt or iTXt chunk's data."""
    _, _, rest = content.partition(b"\0")
    if name == "zTXt":
        rest = _inflate(rest[1:])
    elif name == "iTXt":
        compressed, body = rest[:1] == b"\1", rest[2:]
        body = body.split(b"\0", 2)[-1]  # after language tag and translated keyword
        rest = _inflate(body) if compressed else body
    return png_text_keyword(content), rest


def _is_srgb(icc: bytes) -> tuple[bool, str]:
    try:
        profile = ImageCms.getOpenProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(profile) or "").strip()
    except (OSError, ImageCms.PyCMSError):
        return True, "unreadable ICC profile (ignored)"
    return "srgb" in description.lower(), description


def _convert_icc(im: Image.Image, facts: ImageFacts, icc: bytes) -> Image.Image:
    if im.mode not in ("RGB", "RGBA", "CMYK"):
        facts.transforms.append(("icc", f"ICC profile '{facts.icc}' ignored for colour mode {im.mode}"))
        return im
    alpha = im.getchannel("A") if im.mode == "RGBA" else None
    try:
        out = ImageCms.profileToProfile(im.convert("RGB") if alpha else im,
                                        ImageCms.getOpenProfile(io.BytesIO(icc)), _SRGB,
                                        outputMode="RGB")
    except (OSError, ImageCms.PyCMSError, ValueError) as exc:
        facts.transforms.append(("icc", f"ICC profile '{facts.icc}' could not be applied ({exc})"))
        return im
    facts.transforms.append(("icc", f"colours converted from ICC profile '{facts.icc}' to sRGB"))
    if alpha:
        out.putalpha(alpha)
    return out


def _to_srgb_rgb(im: Image.Image, facts: ImageFacts, icc: bytes | None,
                 srgb: bool) -> Image.Image:
    """RGB pixels in sRGB, alpha composited on white; each change recorded."""
    if icc and not srgb:
        im = _convert_icc(im, facts, icc)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
            facts.transforms.append(("alpha", "transparent pixels composited on white"))
        else:
            im = rgba
    if im.mode != "RGB":
        if im.mode != "RGBA":
            facts.transforms.append(("mode", f"colour mode {im.mode} converted to RGB"))
        if im.mode.startswith("I"):
            # 16-bit grayscale PNG: Pillow's convert() clips at 255 instead of scaling down.
            deep = np.asarray(im, dtype=np.float64) / 257
            im = Image.fromarray(np.clip(deep, 0, 255).round().astype(np.uint8), "L")
        im = im.convert("RGB")
    return im


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """Size scaled so the shorter side is `side` (CLIP centre-crops the rest)."""
    scale = side / min(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _stats(facts: ImageFacts, rgb: np.ndarray) -> None:
    gray = (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.float32)
    facts.mean = float(gray.mean() / 255.0)
    facts.overexposed = float((gray >= 250).mean())
    lap = (gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1]
           - 4 * gray[1:-1, 1:-1])
    facts.laplacian_var = float(lap.var()) if lap.size else 0.0
    hist = np.bincount(gray.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    facts.entropy = float(-(p * np.log2(p)).sum())
    channels = rgb.astype(np.int16)
    delta = np.maximum(np.abs(channels[..., 0] - channels[..., 1]),
                       np.abs(channels[..., 1] - channels[..., 2]))
    facts.channel_delta = float(delta.mean())


def full_pixel_digest(data: bytes, max_pixels: int) -> str:
    """Digest of the full-resolution, oriented RGB pixels (confirms reduced-scale matches)."""
    with open_image(data, max_pixels) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
        return hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


def _encode(im: Image.Image, fmt: str, limits: AnalysisLimits, lossless_webp: bool) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        im.save(out, "JPEG", quality=limits.jpeg_quality, subsampling=0, optimize=True)
    elif fmt == "WEBP":
        im.save(out, "WEBP", lossless=lossless_webp, quality=limits.webp_quality, method=4)
    else:
        im.save(out, "PNG")
    return out.getvalue()


def analyze_image(root: Root, rel: str, stage: Path | None, thumb: Path | None,
                  limits: AnalysisLimits) -> ImageFacts:
    """Facts about one image file under `root`; `stage`/`thumb` are where to write its
    by-products. The file is read once, through `root` (a regular file inside it), and
    everything below, the exported copy included, comes from those bytes."""
    facts = ImageFacts(path=rel)
    try:
        data, facts.identity = root.read(rel, limits.max_bytes)
    except UnsafeFile as exc:
        if exc.check == "file.too_large":
            size = root.lstat(rel).st_size
            return _fail(facts, "file.too_large", f"{size / 1e6:.1f} MB is over the "
                         f"{limits.max_bytes / 1e6:.0f} MB cap")
        return _fail(facts, exc.check, str(exc))
    facts.byte_size = len(data)
    if facts.byte_size == 0:
        return _fail(facts, "file.empty", "the file is empty (0 bytes)")
    facts.sha256 = hashlib.sha256(data).hexdigest()
    facts.sniffed = sniff(data)
    if facts.sniffed not in SUPPORTED:
        what = facts.sniffed or "not an image format ccub recognises"
        return _fail(facts, "file.format", what)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _decode(facts, data, stage, thumb, limits)


def _decode(facts: ImageFacts, data: bytes, stage: Path | None, thumb: Path | None,
            limits: AnalysisLimits) -> ImageFacts:
    try:
        im = open_image(data, limits.max_pixels)
    except DecodeRefused as exc:
        return _fail(facts, "file.undecodable" if exc.check == "file.format" else exc.check,
                     str(exc))
    facts.format, facts.mode = im.format, im.mode
    width, height = im.size
    facts.frames = getattr(im, "n_frames", 1)
    if facts.frames > 1 and im.format != "MPO":
        return _fail(facts, "file.multi_frame", f"{facts.frames} frames (an animation)")
    # One pass over the container: the metadata-free copy and what it leaves out.
    try:
        rewritten: Rewrite | str = rewrite(data, im.format)
        removed: list[Removed] | None = rewritten.removed
        facts.removed = [item.label for item in removed]
    except StripError as exc:
        rewritten, removed = str(exc), None
    try:
        exif = im.getexif()
        facts.orientation = int(exif.get(0x0112, 1) or 1)
        facts.privacy = _privacy(im, removed)
    except (OSError, ValueError, SyntaxError, TypeError):
        facts.orientation = 1  # unreadable EXIF is dropped with the rest of the metadata
        facts.privacy = _privacy_in_blocks(removed)
    if facts.orientation not in range(1, 9):
        facts.orientation = 1
    icc = im.info.get("icc_profile")
    srgb = True
    if icc:
        srgb, facts.icc = _is_srgb(icc)
    if facts.orientation in (5, 6, 7, 8):
        width, height = height, width
    facts.width, facts.height = width, height
    needs_pixels_changed = (facts.orientation != 1 or im.mode != "RGB" or not srgb
                            or "transparency" in im.info)
    # Draft mode: libjpeg decodes every scan (truncation still surfaces) but skips most of
    # the inverse DCT, so a 12 MP phone photo decodes at 1/4 or 1/8 scale in a fraction
    # of the time. Full resolution is only needed when the exported pixels must change.
    if im.format == "JPEG" and not needs_pixels_changed:
        scale = next((s for s in (8, 4, 2) if max(width, height) // s >= limits.work_size), 1)
        # Pillow picks the largest DCT scale at which *both* sides still reach the request.
        im.draft("RGB", (width // scale, height // scale))
        facts.decode_scale = max(1, round(width / im.size[0]))
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        return _fail(facts, "file.truncated", f"decoding failed ({exc})")
    if im.format == "MPO":
        facts.transforms.append(("frames", "multi-picture (MPO) file: only the primary image is kept"))
    if facts.orientation != 1:
        im = ImageOps.exif_transpose(im)
        facts.transforms.append(("orientation", f"EXIF orientation {facts.orientation} applied to the pixels"))
    rgb_im = _to_srgb_rgb(im, facts, icc, srgb)
    facts.pixel_key = pixel_key(rgb_im, facts.decode_scale)
    work = rgb_im.copy()
    work.thumbnail((limits.work_size, limits.work_size), Image.Resampling.BILINEAR)
    _stats(facts, np.asarray(work))
    gray = np.asarray(work.convert("L"))
    hashes, facts.margins = dihedral_phash(gray, limits.trim_tolerance, limits.trim_max_fraction)
    facts.phash = hashes.tobytes()
    top, bottom, left, right = facts.margins
    facts.content = (gray.shape[0] - top - bottom) * (gray.shape[1] - left - right) / gray.size
    if thumb is not None and limits.semantic_size:
        semantic = thumb.with_suffix(".clip.jpg")
        work.resize(_fit(work.size, limits.semantic_size), Image.Resampling.BICUBIC).save(
            semantic, "JPEG", quality=90)
        facts.semantic_input = str(semantic)
    if thumb is not None:
        work.thumbnail((limits.thumbnail_size, limits.thumbnail_size))
        work.save(thumb, "JPEG", quality=70)
        facts.thumbnail = str(thumb)
    if stage is not None:
        _stage(facts, data, rgb_im, needs_pixels_changed, stage, limits, rewritten)
    return facts


def _stage(facts: ImageFacts, data: bytes, rgb_im: Image.Image, reencode: bool,
           stage: Path, limits: AnalysisLimits, rewritten: Rewrite | str) -> None:
    fmt = "JPEG" if facts.format == "MPO" else facts.format
    assert fmt is not None
    out, source = None, None
    if not reencode:
        if isinstance(rewritten, Rewrite) and rewritten.data is not None:
            out = rewritten.data
            facts.export = "metadata removed losslessly"
            # Same pixels: the copy must give the decoder exactly the source's input
            # (decoding it again would double the time spent on a 12 MP photo).
            source = PixelCheck(source=data)
        else:
            why = rewritten if isinstance(rewritten, str) else rewritten.refused
            facts.transforms.append(("export", f"container could not be rewritten losslessly ({why}); re-encoded"))
    if out is None:
        if facts.decode_scale > 1:
            # Decoded in draft mode for the statistics: the export needs every pixel.
            with open_image(data, limits.max_pixels) as full:
                full.load()
                rgb_im = full.convert("RGB")
        lossless = fmt == "PNG" or (fmt == "WEBP" and webp_is_lossless(data))
        out = _encode(rgb_im, fmt, limits, lossless_webp=lossless)
        facts.export = ("re-encoded losslessly" if lossless
                        else f"re-encoded at quality {limits.jpeg_quality if fmt == 'JPEG' else limits.webp_quality}")
        # Only PNG and WebP are re-encoded losslessly, and they are never drafted: the
        # pixels encoded are the ones pixel_key was taken of.
        source = PixelCheck(facts.pixel_key or "") if lossless else None
    # Refuse to export rather than leak: parsers independent of the stripper
    # (ccub.imaging.verify) check the copy, and for a lossless copy its pixels.
    left = verify_image(out, fmt, source)
    if left:
        facts.error, facts.error_detail = "privacy.metadata_left", ", ".join(left)
        return
    target = stage.with_suffix(EXTENSIONS[fmt])
    target.write_bytes(out)
    facts.staged = str(target)
    facts.staged_size = len(out)
