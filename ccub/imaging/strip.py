"""Lossless metadata removal for JPEG, PNG and WebP, by allowlist.

Files are rewritten at the container level: only the segments or chunks a decoder needs
to produce the pixels are copied, byte for byte, and everything else is dropped, so pixel
data is never decoded or re-encoded. What is kept (docs/validate.md, "Outputs"):

* JPEG: SOI, SOFn, DHT, DAC, DQT, DRI, DNL, SOS with its entropy-coded data, RSTn, EOI;
  APP0 JFIF cut to its 14-byte header with a 0x0 thumbnail and APP14 Adobe cut to its
  12-byte header (both decide the colour transform: YCbCr or RGB, YCCK or CMYK).
* PNG: IHDR, PLTE (palette images only), tRNS, IDAT, IEND (written without data). The
  IDAT stream must inflate to exactly the size IHDR implies and end where the last IDAT
  ends.
* WebP: VP8X (flags limited to alpha, reserved bytes zeroed, canvas size kept), ALPH
  (before a lossy VP8 image only), the first VP8 or VP8L image chunk.

Anything else (other APPn, COM, JFXX, unknown markers, text and private chunks, colour
chunks, data after the end of the image) is dropped. A file the allowlist cannot express
(an unknown critical PNG chunk, data hidden after the PNG image stream, animation,
several ALPH chunks) raises `StripError`: the caller re-encodes it from decoded pixels.

Inputs are untrusted uploads. Every length read from the file is checked against the
bytes actually present, and every parsing loop advances by at least one byte per step, so
a malformed file raises `StripError` instead of hanging or reading out of bounds. Names
of removed blocks come from a fixed vocabulary (an APP segment's label or a PNG text
keyword is named only when it is a known one): they are shown in reports, and a file's
own bytes must never reach a report.

Each format has one block iterator yielding ``(name, start, end)`` for every segment/chunk
of the input, and one plan function deciding, block by block, what is written: the
block, a cut-down copy, nothing, or a refusal. `strip_metadata` writes the plan;
`removed_blocks` / `find_metadata` list what it leaves out, so a file produced by
`strip_metadata` always passes `find_metadata` with ``[]``.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Block = tuple[str, int, int]  # (name, start, end) of one segment/chunk of the input


class StripError(ValueError):
    """The data is not a well-formed container of the expected format, or not one the
    allowlist can express (the caller re-encodes it)."""


@dataclass(frozen=True)
class Removed:
    """One block `strip_metadata` leaves out (or cuts down)."""

    name: str  # stable id, as find_metadata lists it: "APP1:Exif", "tEXt", "trailer"
    label: str  # for people, from a fixed vocabulary: "APP1 Exif", "tEXt Comment"
    content: bytes  # the bytes left out; for privacy checks, never to be shown


@dataclass(frozen=True)
class _Step:
    """What the plan writes for one block."""

    out: bytes | memoryview | None  # None: nothing
    removed: Removed | None = None  # what was left out, when anything was
    refuse: str | None = None  # not expressible: strip_metadata raises StripError(refuse)


def _keep(view: memoryview, start: int, end: int) -> _Step:
    return _Step(view[start:end])


def _drop(view: memoryview, start: int, end: int, name: str, label: str) -> _Step:
    return _Step(None, Removed(name, label, bytes(view[start:end])))


# --- JPEG -------------------------------------------------------------------

_JPEG_NAMES = {
    0x01: "TEM", 0xC4: "DHT", 0xC8: "JPG", 0xCC: "DAC", 0xD8: "SOI", 0xD9: "EOI", 0xDA: "SOS",
    0xDB: "DQT", 0xDC: "DNL", 0xDD: "DRI", 0xDE: "DHP", 0xDF: "EXP", 0xFE: "COM",
}  # fmt: skip
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Everything a decoder needs for the pixels; APP0 JFIF and APP14 Adobe are cut down below.
_JPEG_KEEP = {"SOI", "EOI", "SOS", "DQT", "DHT", "DAC", "DRI", "DNL"} | {
    f"RST{i}" for i in range(8)} | {f"SOF{m - 0xC0}" for m in _SOF_MARKERS}  # fmt: skip
# Known APP segment labels (payload prefix -> name). Anything else is just "APPn": a label
# read from the file could itself be the private text.
_APP_LABELS = {
    0: ((b"JFIF\0", "JFIF"), (b"JFXX\0", "JFXX")),
    1: ((b"Exif\0", "Exif"), (b"http://ns.adobe.com/xap/1.0/\0", "XMP"),
        (b"http://ns.adobe.com/xmp/extension/\0", "extended XMP")),
    2: ((b"ICC_PROFILE\0", "ICC_PROFILE"), (b"MPF\0", "MPF"), (b"FPXR\0", "FPXR")),
    12: ((b"Ducky", "Ducky"),),
    13: ((b"Photoshop 3.0\0", "Photoshop"),),
    14: ((b"Adobe", "Adobe"),),
}  # fmt: skip
_JFIF_LEN, _ADOBE_LEN = 14, 12  # standard payload sizes; shorter ones libjpeg ignores
_JPEG_LABELS = {"COM": "COM comment", "trailer": "data after the image end",
                "junk": "bytes between segments",
                "APP0:JFIF+thumbnail": "JFIF thumbnail",
                "APP14:Adobe+extra": "APP14 Adobe bytes beyond its 12"}


def _jpeg_name(marker: int, payload: bytes | memoryview) -> str:
    if 0xE0 <= marker <= 0xEF:
        app = marker - 0xE0
        for prefix, label in _APP_LABELS.get(app, ()):
            if payload[: len(prefix)] == prefix:
                return f"APP{app}:{label}"
        return f"APP{app}"
    if marker in _SOF_MARKERS:
        return f"SOF{marker - 0xC0}"
    if 0xD0 <= marker <= 0xD7:
        return f"RST{marker - 0xD0}"
    return _JPEG_NAMES.get(marker, f"0xFF{marker:02X}")


# 0xFF00 is a stuffed 0xFF data byte and RSTn markers sit inside the scan; anything else
# (including 0xFF fill) starts the next marker. A regex finds it in C: a Python loop over
# every 0xFF of a 12 MP photo's entropy data costs more than the rest of the rewrite.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_NEXT_MARKER = re.compile(rb"\xff+[^\x00\xff]")


def _jpeg_scan_end(data: bytes, pos: int) -> int:
    """Offset of the marker that ends the entropy-coded data starting at pos."""
    match = _SCAN_END.search(data, pos)
    if match is None:
        raise StripError("truncated JPEG: scan data runs to end of file")
    return match.start()


def _jpeg_blocks(data: bytes) -> Iterator[Block]:
    if not data.startswith(b"\xff\xd8"):
        raise StripError("not a JPEG: missing SOI marker")
    yield "SOI", 0, 2
    size = len(data)
    pos = 2
    while True:
        if pos >= size:
            raise StripError("truncated JPEG: no EOI marker")
        if data[pos] != 0xFF:
            # Bytes between segments: decoders skip them (libjpeg with a warning) up to
            # the next marker, so they are dropped like any other non-pixel data.
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                raise StripError("truncated JPEG: no EOI marker")
            yield "junk", pos, found.start()
            pos = found.start()
        # A marker may be preceded by any number of 0xFF fill bytes; they are
        # dropped (start points at the last 0xFF).
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            raise StripError("truncated JPEG: no EOI marker")
        start, marker = pos - 1, data[pos]
        pos += 1
        if marker == 0xD9:
            yield "EOI", start, pos
            # Whatever follows the first image (MPO frames, vendor trailers,
            # appended files) is not part of it.
            if pos < size:
                yield "trailer", pos, size
            return
        if marker in (0x00, 0xD8):
            raise StripError(f"JPEG: unexpected marker 0xFF{marker:02X} at offset {start}")
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone, no length field
            yield _jpeg_name(marker, b""), start, pos
            continue
        if pos + 2 > size:
            raise StripError("truncated JPEG: segment header cut off")
        end = pos + int.from_bytes(data[pos : pos + 2], "big")
        if end < pos + 2 or end > size:
            raise StripError(f"JPEG: segment at offset {start} has an invalid length")
        name = _jpeg_name(marker, data[pos + 2 : min(end, pos + 2 + 40)])
        if marker == 0xDA:
            end = _jpeg_scan_end(data, end)
        yield name, start, end
        pos = end


def _jpeg_plan(data: bytes, deep: bool = True) -> Iterator[_Step]:
    view = memoryview(data)
    for name, start, end in _jpeg_blocks(data):
        payload = start + 4  # after marker and length
        if name in _JPEG_KEEP:
            yield _keep(view, start, end)
        elif name == "APP0:JFIF" and end - payload >= _JFIF_LEN:
            # Version, units and density, with a 0x0 thumbnail: an embedded thumbnail can
            # show the uncropped original.
            out = b"\xff\xe0\x00\x10" + data[payload : payload + _JFIF_LEN - 2] + b"\0\0"
            cut = data[payload + _JFIF_LEN - 2 : end]
            yield _Step(out, Removed("APP0:JFIF+thumbnail", "JFIF thumbnail", cut)
                        if cut != b"\0\0" else None)
        elif name == "APP14:Adobe" and end - payload >= _ADOBE_LEN:
            # "Adobe", version, two flag words and the transform byte (YCbCr/YCCK or not).
            out = b"\xff\xee\x00\x0e" + data[payload : payload + _ADOBE_LEN]
            cut = data[payload + _ADOBE_LEN : end]
            yield _Step(out, Removed("APP14:Adobe+extra", _JPEG_LABELS["APP14:Adobe+extra"],
                                     cut) if cut else None)
        else:
            # Every other APPn (Exif, XMP, ICC, MPF, Photoshop/IPTC, JFXX, short JFIF or
            # Adobe headers, which libjpeg ignores), COM, TEM, DHP/EXP, reserved markers.
            label = _JPEG_LABELS.get(name) or name.replace(":", " ")
            yield _drop(view, start, end, name, label)


def strip_jpeg(data: bytes) -> bytes:
    """Keep only what decodes the pixels; APP0 JFIF and APP14 Adobe cut to their headers."""
    return strip_metadata(data, "JPEG")


# --- PNG --------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# colour type -> (channels, allowed bit depths)
_PNG_COLOUR = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)),
               4: (2, (8, 16)), 6: (4, (8, 16))}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))
# Keywords named in reports (PNG spec's registered ones and common tools'); others are not.
_PNG_KEYWORDS = {
    "Title", "Author", "Description", "Copyright", "Creation Time", "Software", "Disclaimer",
    "Warning", "Source", "Comment", "Location", "XML:com.adobe.xmp", "Raw profile type exif",
    "Raw profile type xmp", "Raw profile type iptc", "Raw profile type APP1", "date:create",
    "date:modify", "date:timestamp", "parameters", "prompt", "workflow",
}  # fmt: skip
_APNG = {"acTL", "fcTL", "fdAT"}
_INFLATE_STEP = 1 << 20
_AFTER_STREAM = "data after the end of the image data stream"


def _png_blocks(data: bytes) -> Iterator[Block]:
    if not data.startswith(_PNG_SIGNATURE):
        raise StripError("not a PNG: bad signature")
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise StripError("truncated PNG: no IEND chunk")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length  # length + type + data + CRC
        if length > 0x7FFFFFFF or end > len(data):
            raise StripError(f"PNG: chunk at offset {pos} has an invalid length")
        if not ctype.isalpha():
            raise StripError(f"PNG: invalid chunk type at offset {pos}")
        name = ctype.decode("ascii")
        if pos == len(_PNG_SIGNATURE) and name != "IHDR":
            raise StripError("PNG: first chunk is not IHDR")
        yield name, pos, end
        pos = end
        if name == "IEND":
            if pos < len(data):
                yield "trailer", pos, len(data)
            return


def png_text_keyword(content: bytes) -> str | None:
    """The keyword of a tEXt/zTXt/iTXt chunk's data, when it is a known one."""
    keyword = content[:80].split(b"\0", 1)[0].decode("latin-1")
    return keyword if keyword in _PNG_KEYWORDS else None


def _png_label(name: str, content: bytes) -> str:
    if name in ("tEXt", "zTXt", "iTXt"):
        keyword = png_text_keyword(content)
        return f"{name} {keyword}" if keyword else name
    return {"trailer": "data after the image end", "IEND+data": "data inside IEND",
            "IDAT+data": "data after the image data stream"}.get(name, name)


def _png_image_size(ihdr: bytes) -> int:
    """Bytes the IDAT stream must inflate to (filter byte + packed samples per row)."""
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", ihdr)
    channels, depths = _PNG_COLOUR.get(colour, (0, ()))
    if (depth not in depths or compression or filtering or interlace > 1 or not width
            or not height or width > 0x7FFFFFFF or height > 0x7FFFFFFF):
        raise StripError("PNG: IHDR is not a valid image header")
    bits = channels * depth

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w and h else 0

    if not interlace:
        return rows(width, height)
    return sum(rows((width - x + dx - 1) // dx, (height - y + dy - 1) // dy)
               for x, y, dx, dy in _ADAM7)


def _png_stream_problem(pieces: list[memoryview], expected: int) -> str | None:
    """Why the IDAT data is not exactly one zlib stream of `expected` bytes, or None.

    Inflated in bounded steps: memory stays small whatever the stream claims."""
    inflate = zlib.decompressobj()
    total = 0
    try:
        for piece in pieces:
            # Fed in small slices so that zlib's unconsumed input is never copied at length.
            for at in range(0, len(piece), _INFLATE_STEP >> 4):
                if inflate.eof:
                    return _AFTER_STREAM
                pending: bytes | memoryview = piece[at : at + (_INFLATE_STEP >> 4)]
                while True:
                    out = len(inflate.decompress(pending, _INFLATE_STEP))
                    total += out
                    if total > expected:
                        return "the image data stream inflates to more than the image"
                    if inflate.unused_data:
                        return _AFTER_STREAM
                    pending = inflate.unconsumed_tail
                    # A full step may leave output inside zlib: ask again, with no input.
                    if inflate.eof or (not pending and out < _INFLATE_STEP):
                        break
    except zlib.error:
        return "the image data stream is corrupt"
    if not inflate.eof:
        return "the image data stream is truncated"
    if total != expected:
        return "the image data stream is shorter than the image"
    return None


def _png_plan(data: bytes, deep: bool = True) -> Iterator[_Step]:
    """deep: inflate the image data stream to check it (the listing alone can skip that)."""
    view = memoryview(data)
    colour, depth, palette, seen, idat_done = -1, 0, 0, set(), False
    pieces: list[memoryview] = []
    expected = 0
    for name, start, end in _png_blocks(data):
        content = view[start + 8 : end - 4] if name != "trailer" else view[start:end]
        if name in ("IHDR", "PLTE", "tRNS", "IDAT"):
            (crc,) = struct.unpack_from(">I", data, end - 4)
            if zlib.crc32(view[start + 4 : end - 4]) != crc:  # CRC covers type + data
                raise StripError(f"PNG: CRC mismatch in {name} chunk at offset {start}")
        if pieces and name != "IDAT":
            idat_done = True
        if name == "IHDR":
            if seen or len(content) != 13:
                raise StripError("PNG: IHDR must come once, first, with 13 bytes")
            expected = _png_image_size(bytes(content))
            colour, depth = content[9], content[8]
            yield _keep(view, start, end)
        elif name == "IDAT":
            if idat_done:
                yield _Step(None, refuse="PNG: IDAT chunks are not consecutive")
            pieces.append(content)
            yield _keep(view, start, end)
        elif name == "IEND":
            problem = "no IDAT chunk" if not pieces else (
                _png_stream_problem(pieces, expected) if deep else None)
            if problem:
                hidden = Removed("IDAT+data", _png_label("IDAT+data", b""), b"")
                yield _Step(None, hidden if problem == _AFTER_STREAM else None,
                            refuse=f"PNG: {problem}")
            # IEND carries no data; anything inside it is dropped with the chunk.
            yield _Step(_IEND, Removed("IEND+data", _png_label("IEND+data", b""),
                                       bytes(content)) if len(content) else None)
        elif name == "PLTE" and colour == 3:
            # The palette of a palette image; for RGB images it is only a display hint.
            entries, rest = divmod(len(content), 3)
            if "PLTE" in seen or pieces or rest or not 0 < entries <= 1 << depth:
                yield _Step(None, refuse="PNG: PLTE chunk does not fit the image")
            palette = entries
            yield _keep(view, start, end)
        elif name == "tRNS" and colour in (0, 2, 3):
            # Which pixels are transparent: exactly one grey or RGB sample, or at most
            # one alpha per palette entry. Longer ones could carry anything.
            fits = len(content) == {0: 2, 2: 6}.get(colour, 0) or (
                colour == 3 and 0 < len(content) <= palette)
            if "tRNS" in seen or pieces or not fits:
                yield _Step(None, refuse="PNG: tRNS chunk does not fit the image")
            yield _keep(view, start, end)
        elif name in _APNG:
            yield _Step(None, Removed(name, name, bytes(content)),
                        refuse="animated PNG (APNG) is not supported")
        elif name[0].isupper() and name not in ("PLTE", "tRNS"):
            # An unknown critical chunk: a conforming decoder must refuse the file (Pillow
            # skips it, browsers do not), so the copy cannot keep it or drop it silently.
            yield _Step(None, Removed(name, f"{name} (unknown critical chunk)", bytes(content)),
                        refuse=f"PNG: unknown critical chunk {name}")
        else:
            # Every other ancillary chunk, colour chunks included: gAMA, cHRM, sRGB, iCCP,
            # cICP and mDCV/cLLI describe how to show the pixels, not the pixels. Exported
            # pixels are sRGB by definition (a non-sRGB ICC profile is converted into the
            # pixels before export), and Pillow-based loaders ignore these chunks anyway,
            # so dropping them makes browsers and training loaders agree on the colours.
            yield _Step(None, Removed(name, _png_label(name, bytes(content)), bytes(content)))
        seen.add(name)


def strip_png(data: bytes) -> bytes:
    """Keep IHDR, PLTE (palette images), tRNS, IDAT and an empty IEND; drop the rest."""
    return strip_metadata(data, "PNG")


# --- WebP -------------------------------------------------------------------

_VP8X_ALPHA, _VP8X_ANIMATION = 0x10, 0x02
_FOURCC = re.compile(r"[A-Za-z0-9 ]{4}")


def _webp_blocks(data: bytes) -> Iterator[Block]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise StripError("not a WebP: missing RIFF/WEBP header")
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data):
        raise StripError("truncated WebP: RIFF size exceeds the data")
    if riff_end <= 12:
        raise StripError("WebP: RIFF container has no chunks")
    pos = 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise StripError(f"WebP: chunk header at offset {pos} is cut off")
        fourcc, length = struct.unpack_from("<4sI", data, pos)
        end = pos + 8 + length
        if end > riff_end:
            raise StripError(f"WebP: chunk at offset {pos} runs past the RIFF end")
        name = fourcc.decode("latin-1")
        name = name if _FOURCC.fullmatch(name) else "unknown"
        if pos == 12 and name not in ("VP8 ", "VP8L", "VP8X"):
            raise StripError("WebP: the first chunk is not VP8, VP8L or VP8X")
        # Chunks are padded to even sizes; tolerate a missing final pad byte.
        end = min(end + (length & 1), riff_end)
        yield name, pos, end
        pos = end
    if riff_end < len(data):
        yield "trailer", riff_end, len(data)


def webp_is_lossless(data: bytes) -> bool:
    """True when the WebP's image data is a VP8L (lossless) bitstream."""
    try:
        return next((name for name, _, _ in _webp_blocks(data) if name in ("VP8 ", "VP8L")),
                    None) == "VP8L"
    except StripError:
        return False


def _webp_chunk(view: memoryview, start: int) -> Iterator[_Step]:
    """The chunk at `start` with its declared length, padded with a zero byte if odd."""
    length = int.from_bytes(view[start + 4 : start + 8], "little")
    yield _Step(view[start : start + 8 + length])
    if length & 1:
        yield _Step(b"\0")


def _webp_plan(data: bytes, deep: bool = True) -> Iterator[_Step]:
    view = memoryview(data)
    blocks = list(_webp_blocks(data))
    names = [name for name, _, _ in blocks]
    image = next((i for i, name in enumerate(names) if name in ("VP8 ", "VP8L")), None)
    if image is None:
        animated = {"ANIM", "ANMF"} & set(names)
        raise StripError("animated WebP is not supported" if animated
                         else "WebP: no VP8 or VP8L image chunk")
    extended = names[0] == "VP8X"
    # ALPH is read only from a VP8X file, before a lossy VP8 image; libwebp takes the last
    # one, so more than one cannot be expressed by keeping one of them.
    alph = []
    if extended and names[image] == "VP8 ":
        alph = [i for i, name in enumerate(names[:image]) if name == "ALPH"]
    for i, (name, start, end) in enumerate(blocks):
        label = {"trailer": "data after the image end", "XMP ": "XMP chunk"}.get(
            name, f"{name} chunk")
        if name in ("ANIM", "ANMF"):
            yield _Step(None, Removed(name, label, b""), refuse="animated WebP is not supported")
        elif i == 0 and extended:
            chunk = data[start : start + 8 + int.from_bytes(data[start + 4 : start + 8], "little")]
            if len(chunk) < 18:
                raise StripError("WebP: VP8X chunk is too short")
            if chunk[8] & _VP8X_ANIMATION:
                yield _Step(None, refuse="animated WebP is not supported")
            # Flags name the chunks present (only ALPH may stay), three reserved bytes,
            # then the canvas width and height, which decoders check against the image.
            flags = chunk[8] & _VP8X_ALPHA
            out = b"VP8X\x0a\0\0\0" + bytes([flags]) + b"\0\0\0" + chunk[12:18]
            hidden = chunk[9:12] + chunk[18:]
            yield _Step(out, Removed("VP8X+data", "VP8X reserved bytes", hidden)
                        if hidden.strip(b"\0") else None)
        elif i == image or (i in alph and len(alph) == 1):
            yield from _webp_chunk(view, start)
        elif i in alph:
            yield _Step(None, Removed(name, label, b""), refuse="WebP: several ALPH chunks")
        else:
            # EXIF, XMP, ICCP, unknown chunks, a second VP8X or image chunk, ALPH where no
            # decoder reads it, and anything after the RIFF container.
            yield _drop(view, start + (8 if name != "trailer" else 0), end, name, label)


def strip_webp(data: bytes) -> bytes:
    """Keep VP8X (metadata flags and reserved bytes cleared), ALPH and the image chunk."""
    return strip_metadata(data, "WEBP")


def _riff(parts: list[bytes | memoryview]) -> bytes:
    size = 4 + sum(len(part) for part in parts)
    return b"".join([b"RIFF", size.to_bytes(4, "little"), b"WEBP", *parts])


# --- dispatch ---------------------------------------------------------------


@dataclass(frozen=True)
class Rewrite:
    """`strip_metadata` and `removed_blocks` of one file, from one pass over it."""

    data: bytes | None  # the file without metadata; None when refused
    refused: str | None  # why the allowlist cannot express the file (re-encode it)
    removed: list[Removed]


# Pillow format name -> (plan, what joins the written blocks into a file, in one copy)
_Format = tuple[Callable[[bytes, bool], Iterator[_Step]],
                Callable[[list[bytes | memoryview]], bytes]]
_FORMATS: dict[str, _Format] = {
    "JPEG": (_jpeg_plan, b"".join),
    "MPO": (_jpeg_plan, b"".join),  # Pillow's name for multi-picture JPEG
    "PNG": (_png_plan, lambda parts: b"".join([_PNG_SIGNATURE, *parts])),
    "WEBP": (_webp_plan, _riff),
}


def _format(fmt: str) -> _Format:
    try:
        return _FORMATS[fmt.upper()]
    except KeyError:
        raise StripError(f"unsupported format {fmt!r}") from None


def rewrite(data: bytes, fmt: str) -> Rewrite:
    """The metadata-free file (or why there is none) and every block it leaves out.

    Raises StripError when the container cannot be parsed at all. A file the allowlist
    cannot express is still listed in full (its refused blocks included): that is what a
    re-encode from the pixels removes.
    """
    plan, wrap = _format(fmt)
    parts: list[bytes | memoryview] = []
    refused, removed = None, []
    for step in plan(data, True):
        if step.removed is not None:
            removed.append(step.removed)
        refused = refused or step.refuse
        if step.out is not None and refused is None:
            parts.append(step.out)
    return Rewrite(None if refused else wrap(parts), refused, removed)


def strip_metadata(data: bytes, fmt: str) -> bytes:
    """Remove metadata from `data` (Pillow format JPEG, MPO, PNG or WEBP), pixels untouched.

    Raises StripError when the container is malformed or the allowlist cannot express it."""
    result = rewrite(data, fmt)
    if result.data is None:
        raise StripError(result.refused)
    return result.data


def removed_blocks(data: bytes, fmt: str) -> list[Removed]:
    """Every block `strip_metadata` leaves out or cuts down, in file order."""
    return rewrite(data, fmt).removed


def find_metadata(data: bytes, fmt: str) -> list[str]:
    """Names of blocks that `strip_metadata` would remove, e.g. ["APP1:Exif", "COM"]; [] when clean.

    Besides metadata this lists JFIF thumbnails, data after the end of the image
    ("trailer"), unknown and colour chunks and animation chunks. It does not inflate a
    PNG's image data (the one slow step): data hidden after the PNG image stream is found
    by `rewrite` / `strip_metadata`, which refuse the file, and by the export's verifier.
    """
    plan = _format(fmt)[0]
    return [step.removed.name for step in plan(data, False) if step.removed is not None]
