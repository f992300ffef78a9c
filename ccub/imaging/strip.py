"""Lossless metadata removal for JPEG, PNG and WebP.

Files are rewritten at the container level: segments or chunks that carry
metadata are dropped and everything else is copied byte for byte, so pixel
data is never decoded or re-encoded.

Inputs are untrusted uploads. Every length read from the file is checked
against the bytes actually present, and every parsing loop advances by at
least one byte per step, so a malformed file raises `StripError` instead of
hanging or reading out of bounds.

Each format has one block iterator yielding ``(name, start, end)`` for every
segment/chunk of the input, and one ``keep`` predicate on those names.
`strip_*` copies the kept blocks; `find_metadata` lists the others, so a file
produced by `strip_metadata` always passes `find_metadata` with ``[]``.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator

Block = tuple[str, int, int]  # (name, start, end) of one segment/chunk of the input


class StripError(ValueError):
    """The data is not a well-formed container of the expected format."""


# --- JPEG -------------------------------------------------------------------

_JPEG_NAMES = {
    0x01: "TEM", 0xC4: "DHT", 0xCC: "DAC", 0xD8: "SOI", 0xD9: "EOI", 0xDA: "SOS",
    0xDB: "DQT", 0xDC: "DNL", 0xDD: "DRI", 0xDE: "DHP", 0xDF: "EXP", 0xFE: "COM",
}  # fmt: skip
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Everything a decoder needs. APP0 JFIF and APP14 Adobe stay because they
# decide the colour transform (YCbCr vs RGB, YCCK vs CMYK): dropping them
# would change the decoded pixels.
_JPEG_KEEP = {
    "SOI", "EOI", "SOS", "DQT", "DHT", "DAC", "DRI", "DNL", "DHP", "EXP", "TEM",
    "APP0:JFIF", "APP14:Adobe",
} | {f"RST{i}" for i in range(8)} | {f"SOF{m - 0xC0}" for m in _SOF_MARKERS}  # fmt: skip
_APP_ID = re.compile(rb"[ -~]{1,40}")  # printable label such as b"Exif", b"ICC_PROFILE"


def _jpeg_name(marker: int, payload: bytes) -> str:
    if 0xE0 <= marker <= 0xEF:
        app = marker - 0xE0
        if app == 0 and payload.startswith(b"JFIF\0"):
            # 14 bytes up to the thumbnail dimensions; anything more is an
            # embedded thumbnail, which can show the uncropped original.
            return "APP0:JFIF+thumbnail" if len(payload) > 14 else "APP0:JFIF"
        if app == 14 and payload.startswith(b"Adobe"):
            return "APP14:Adobe"
        label = _APP_ID.match(payload)
        return f"APP{app}:{label[0].decode()}" if label else f"APP{app}"
    if marker in _SOF_MARKERS:
        return f"SOF{marker - 0xC0}"
    if 0xD0 <= marker <= 0xD7:
        return f"RST{marker - 0xD0}"
    return _JPEG_NAMES.get(marker, f"0xFF{marker:02X}")


# 0xFF00 is a stuffed 0xFF data byte and RSTn markers sit inside the scan; anything else
# (including 0xFF fill) starts the next marker. A regex finds it in C: a Python loop over
# every 0xFF of a 12 MP photo's entropy data costs more than the rest of the rewrite.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")


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
            raise StripError(f"JPEG: expected a marker at offset {pos}")
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
        name = _jpeg_name(marker, data[pos + 2 : end])
        if marker == 0xDA:
            end = _jpeg_scan_end(data, end)
        yield name, start, end
        pos = end


def _jpeg_keep(name: str) -> bool:
    return name in _JPEG_KEEP


def strip_jpeg(data: bytes) -> bytes:
    """Drop APP1-APP15 (but not Adobe APP14), COM, JFIF thumbnails and all after the first EOI."""
    out = []
    for name, start, end in _jpeg_blocks(data):
        if name == "APP0:JFIF+thumbnail":
            # Keep the JFIF header (version, density) with a 0x0 thumbnail.
            out.append(b"\xff\xe0\x00\x10" + data[start + 4 : start + 16] + b"\x00\x00")
        elif _jpeg_keep(name):
            out.append(data[start:end])
    return b"".join(out)


# --- PNG --------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
            raise StripError(f"PNG: invalid chunk type {ctype!r} at offset {pos}")
        name = ctype.decode("ascii")
        if pos == len(_PNG_SIGNATURE) and name != "IHDR":
            raise StripError("PNG: first chunk is not IHDR")
        yield name, pos, end
        pos = end
        if name == "IEND":
            if pos < len(data):
                yield "trailer", pos, len(data)
            return


def _png_keep(name: str) -> bool:
    # Critical chunks (uppercase first letter) are needed to decode; tRNS is
    # ancillary but changes which pixels are transparent. Colour chunks
    # (gAMA, cHRM, sRGB, iCCP, cICP) are dropped on purpose.
    return name[0].isupper() or name == "tRNS"


def strip_png(data: bytes) -> bytes:
    """Keep critical chunks and tRNS; drop every other ancillary chunk."""
    view = memoryview(data)
    out = [_PNG_SIGNATURE]
    for name, start, end in _png_blocks(data):
        if name == "acTL":
            raise StripError("animated PNG (APNG) is not supported")
        if _png_keep(name):
            (crc,) = struct.unpack_from(">I", data, end - 4)
            if zlib.crc32(view[start + 4 : end - 4]) != crc:  # CRC covers type + data
                raise StripError(f"PNG: CRC mismatch in {name} chunk at offset {start}")
            out.append(data[start:end])
    return b"".join(out)


# --- WebP -------------------------------------------------------------------

_VP8X_ICC, _VP8X_EXIF, _VP8X_XMP, _VP8X_ANIMATION = 0x20, 0x08, 0x04, 0x02
_WEBP_KEEP = {"VP8X", "VP8 ", "VP8L", "ALPH"}


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
        name = fourcc.decode("ascii", "backslashreplace")
        if pos == 12 and name not in ("VP8 ", "VP8L", "VP8X"):
            raise StripError(f"WebP: unexpected first chunk {name!r}")
        # Chunks are padded to even sizes; tolerate a missing final pad byte.
        end = min(end + (length & 1), riff_end)
        yield name, pos, end
        pos = end
    if riff_end < len(data):
        yield "trailer", riff_end, len(data)


def _webp_keep(name: str) -> bool:
    return name in _WEBP_KEEP


def webp_is_lossless(data: bytes) -> bool:
    """True when the WebP's image data is a VP8L (lossless) bitstream."""
    try:
        return any(name == "VP8L" for name, _, _ in _webp_blocks(data))
    except StripError:
        return False


def strip_webp(data: bytes) -> bytes:
    """Keep VP8X/ALPH/VP8/VP8L (metadata flags cleared); a simple WebP comes back unchanged."""
    chunks = []
    for name, start, _ in _webp_blocks(data):
        if name in ("ANIM", "ANMF"):
            raise StripError("animated WebP is not supported")
        if not _webp_keep(name):
            continue
        length = int.from_bytes(data[start + 4 : start + 8], "little")
        chunk = bytearray(data[start : start + 8 + length])
        if length & 1:
            chunk.append(0)
        if name == "VP8X":
            if length < 10:
                raise StripError("WebP: VP8X chunk is too short")
            if chunk[8] & _VP8X_ANIMATION:
                raise StripError("animated WebP is not supported")
            # The flags must match the chunks present, or decoders may reject the file.
            chunk[8] &= ~(_VP8X_ICC | _VP8X_EXIF | _VP8X_XMP) & 0xFF
        chunks.append(chunk)
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


# --- dispatch ---------------------------------------------------------------

# (block iterator, keep predicate, stripper) per Pillow format name
_Format = tuple[Callable[[bytes], Iterator[Block]], Callable[[str], bool], Callable[[bytes], bytes]]
_FORMATS: dict[str, _Format] = {
    "JPEG": (_jpeg_blocks, _jpeg_keep, strip_jpeg),
    "MPO": (_jpeg_blocks, _jpeg_keep, strip_jpeg),  # Pillow's name for multi-picture JPEG
    "PNG": (_png_blocks, _png_keep, strip_png),
    "WEBP": (_webp_blocks, _webp_keep, strip_webp),
}


def _format(fmt: str) -> _Format:
    try:
        return _FORMATS[fmt.upper()]
    except KeyError:
        raise StripError(f"unsupported format {fmt!r}") from None


def strip_metadata(data: bytes, fmt: str) -> bytes:
    """Remove metadata from `data` (Pillow format JPEG, MPO, PNG or WEBP), pixels untouched."""
    return _format(fmt)[2](data)


def find_metadata(data: bytes, fmt: str) -> list[str]:
    """Names of blocks that `strip_metadata` would remove, e.g. ["APP1:Exif", "COM"]; [] when clean.

    Besides metadata this lists JFIF thumbnails, data after the end of the
    image ("trailer"), unknown chunks and animation chunks.
    """
    blocks, keep, _ = _format(fmt)
    return [name for name, _, _ in blocks(data) if not keep(name)]
