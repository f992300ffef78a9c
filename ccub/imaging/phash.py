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


def _uniform_run(lines: np.ndarray, tolerance: float, share: float) -> int:
    """How many leading lines (rows of `lines`) are near-uniform in the first line's colour."""
    colour = np.median(lines[0])
    close = (np.abs(lines - colour) <= tolerance).mean(axis=1) >= share
    return int(np.argmin(close)) if not close.all() else len(lines)


def trim_margins(gray: np.ndarray, tolerance: float = 12.0, max_fraction: float = 0.3,
                 share: float = 0.98) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) line counts of near-uniform margins, each side capped."""
    h, w = gray.shape
    cap_h, cap_w = int(h * max_fraction), int(w * max_fraction)
    g = gray.astype(np.float32)
    top = min(_uniform_run(g, tolerance, share), cap_h)
    bottom = min(_uniform_run(g[::-1], tolerance, share), cap_h)
    left = min(_uniform_run(g.T, tolerance, share), cap_w)
    right = min(_uniform_run(g.T[::-1], tolerance, share), cap_w)
    return top, bottom, left, right


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
