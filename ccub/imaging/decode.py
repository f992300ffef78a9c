"""Opening untrusted image bytes: only the formats ccub accepts, and never too many pixels.

`Image.open` without `formats=` lets every Pillow plugin parse the bytes (EPS runs
Ghostscript; TIFF, PSD, ICNS and the rest are large attack surfaces), so every untrusted file
is opened here. The pixel cap is checked on the header, before anything is decoded, and is
lower than Pillow's own decompression-bomb limit.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

# Registers the three decoders by name: `formats=` only finds plugins already imported.
from PIL import Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError, WebPImagePlugin  # noqa: F401

# What ccub accepts from contributors and hosts. A JPEG with extra frames (phone portraits)
# opens as Pillow's "MPO" through the JPEG decoder; only its first frame is ever used.
ACCEPTED = ("JPEG", "PNG", "WEBP")


class DecodeRefused(ValueError):
    """The bytes are not opened; `check` names the finding (file.format, file.too_many_pixels,
    file.undecodable)."""

    def __init__(self, check: str, message: str):
        super().__init__(message)
        self.check = check


def open_image(source: bytes | Path | BinaryIO, max_pixels: int) -> Image.Image:
    """A lazily decoding Pillow image of an accepted format with at most `max_pixels` pixels."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning fires above its limit; ours is lower and an error.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source, formats=list(ACCEPTED))
    except Image.DecompressionBombError as exc:
        raise DecodeRefused("file.too_many_pixels", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise DecodeRefused("file.format", "not a JPEG, PNG or WebP image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeRefused("file.undecodable", f"cannot be opened ({exc})") from exc
    width, height = im.size
    if width * height > max_pixels:
        im.close()
        raise DecodeRefused("file.too_many_pixels",
                            f"{width}x{height} = {width * height / 1e6:.0f} MP is over the "
                            f"{max_pixels / 1e6:.0f} MP cap")
    return im
