"""Perceptual hashes that survive borders, rotations and mirrors.

A 256-bit pHash (imagehash, hash size 16) of the orientation-corrected image after near-uniform
margins are trimmed (letterboxing, screenshot frames and added borders otherwise move the hash
far), computed for each of the 8 rotations and mirrorings. Two images' distance is the least
Hamming distance between one's identity hash and the other's 8 variants.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

HASH_SIZE = 16  # 16 x 16 = 256 bits
VARIANTS = 8
WORDS = HASH_SIZE * HASH_SIZE // 64
_SIDE = HASH_SIZE * 4  # imagehash's default high-frequency factor


def _margin(lines: np.ndarray, tolerance: float, share: float) -> int:
    """How many leading lines (rows of `lines`) form an added margin, else 0.

    A margin is a run of lines in the first line's colour (within `tolerance` on `share` of
    the pixels) that ends at a sharp edge: the next lines differ from it by at least twice
    the tolerance on average. A sky or wall fading into the picture has no such edge, so
    content is never trimmed as a border (the framed and unframed copy must lose the same).
    """
    colour = np.median(lines[0])
    close = (np.abs(lines - colour) <= tolerance).mean(axis=1) >= share
    run = int(np.argmin(close)) if not close.all() else len(lines)
    if run == 0 or run >= len(lines) - 2:
        return 0
    # Look past one line: resampling blends the last border line with the first content line.
    edge = np.abs(lines[run:run + 3] - colour).mean(axis=1).max()
    return run if edge >= 2 * tolerance else 0


def trim_margins(gray: np.ndarray, tolerance: float = 12.0, max_fraction: float = 0.3,
                 share: float = 0.98) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) line counts of added margins, each side capped."""
    h, w = gray.shape
    cap_h, cap_w = int(h * max_fraction), int(w * max_fraction)
    g = gray.astype(np.float32)
    return (min(_margin(g, tolerance, share), cap_h),
            min(_margin(g[::-1], tolerance, share), cap_h),
            min(_margin(g.T, tolerance, share), cap_w),
            min(_margin(g.T[::-1], tolerance, share), cap_w))


def dihedral_phash(gray: np.ndarray, tolerance: float = 12.0, max_fraction: float = 0.3
                   ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(8 x 4 uint64 hashes, trimmed margins) of a grayscale image (uint8 array)."""
    top, bottom, left, right = trim_margins(gray, tolerance, max_fraction)
    h, w = gray.shape
    core = gray[top:h - bottom, left:w - right]
    small = np.asarray(Image.fromarray(core).resize((_SIDE, _SIDE), Image.Resampling.LANCZOS))
    # Resizing first and transforming the 64 x 64 copy gives each variant exactly the hash of
    # the transformed image, at an eighth of the resizing cost.
    variants = [np.rot90(small, k) for k in range(4)]
    variants += [np.rot90(small[:, ::-1], k) for k in range(4)]
    bits = np.stack([imagehash.phash(Image.fromarray(np.ascontiguousarray(v)),
                                     hash_size=HASH_SIZE).hash.ravel() for v in variants])
    return np.packbits(bits, axis=1).view(np.uint64), (top, bottom, left, right)


def distance(a: np.ndarray, b: np.ndarray) -> int:
    """Least Hamming distance between a's identity hash and b's 8 variants."""
    return int(np.bitwise_count(a[0] ^ b).sum(axis=-1).min())
