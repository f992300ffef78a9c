"""Labelled near-duplicate benchmark: ccub's dihedral 256-bit pHash against the common recipe.

    python bench/dedup_quality.py [--images 60] [--unrelated 20000] [--workers 2] [--seed 0] [--keep DIR]

Renders photo-like synthetic scenes (landscapes, streets, food on tables, studio still lifes,
portraits, close-ups of plants, market stalls; layered, shaded, textured, blurred, vignetted,
with sensor noise, saved as a camera JPEG at quality 95; about a third in portrait
orientation). For each base image it writes the transformed copies a contributor might
submit (re-encodes, resizes, crops, mirror, rotations, an EXIF-rotated copy, brightness and
contrast edits, borders, screenshots) and two hard negatives: the same scene photographed again
from a slightly moved camera (parallax, zoom, objects moved a little, new sensor noise). Other
scenes give the unrelated negatives.

Every file is hashed exactly as `ccub validate` does (`ccub.imaging.analyze.analyze_image`:
EXIF orientation applied, sRGB RGB, 384 px BILINEAR working copy, `dihedral_phash`) and with
the common recipe, `imagehash.phash(Image.open(path))` (64 bits, raw pixels, no orientation
handling, duplicate at distance <= 10). Prints recall per transformation for ccub's duplicate
tier (<= near_max_distance), its duplicate-or-review band (<= review_max_distance) and the
common recipe; precision over all positive and negative pairs; false positives on hard
negatives; ccub distance distributions; a threshold sweep; and which targets are met.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccub.config import Config  # noqa: E402
from ccub.imaging.analyze import AnalysisLimits, analyze_image  # noqa: E402
from ccub.imaging.phash import distance  # noqa: E402

Colour = np.ndarray  # (3,) float32, 0..255

# ----------------------------------------------------------------------------------------
# Scenes: primitives and background layers in the coordinates of the reference photo (pixels),
# each at a depth (0 far .. 1 near) that sets its parallax when the camera moves.
# ----------------------------------------------------------------------------------------


@dataclass
class View:
    """Where the camera is, relative to the reference photo."""

    shift: tuple[float, float] = (0.0, 0.0)  # lateral move in frame widths/heights (near objects)
    zoom: float = 1.0
    jitter: float = 0.0  # independent movement of each object, in frame widths
    exposure: float = 1.0
    seed: int = 0  # sensor noise and object jitter


@dataclass
class Prim:
    kind: str  # "ellipse", "rect" or "poly"
    depth: float
    colour: Colour
    group: int = 0  # primitives of one object move together
    x: float = 0.0  # ellipse: centre; rect: x0, y0
    y: float = 0.0
    a: float = 0.0  # ellipse: radii; rect: x1, y1
    b: float = 0.0
    angle: float = 0.0
    shade: float = 0.0  # ellipse: sphere shading; rect/poly: vertical gradient
    stripes: tuple[float, float, float] = (0.0, 0.0, 0.0)  # period, angle, amplitude
    points: list[tuple[float, float]] = field(default_factory=list)


# A background layer: (depth, fn(X, Y, noise) -> (rgb (h, w, 3), alpha (h, w) or None)).
Layer = tuple[float, Callable]


@dataclass
class Scene:
    size: tuple[int, int]
    seed: int
    layers: list[Layer]
    prims: list[Prim]
    light: tuple[float, float]  # direction of the key light (x, y)
    blur: float
    noise: float
    vignette: float
    tilt: tuple[float, float]  # global light gradient (amplitude, angle)
    shadow: float  # amplitude of soft uneven lighting


def col(*rgb: float) -> Colour:
    return np.array(rgb, dtype=np.float32)


def jitter_colour(rng: np.random.Generator, c: Colour, amount: float = 18) -> Colour:
    return np.clip(c + rng.normal(0, amount, 3), 5, 250).astype(np.float32)


def palette(rng: np.random.Generator) -> Colour:
    """A saturated or earthy colour."""
    hue = rng.uniform(0, 1)
    sat, val = rng.uniform(0.3, 0.9), rng.uniform(90, 235)
    k = (np.array([0, 2 / 3, 1 / 3]) + hue) % 1
    rgb = val * (1 - sat * np.clip(np.abs(k * 6 - 3) - 1, 0, 1))
    return rgb[::-1].astype(np.float32).copy()


class Noise:
    """Fractal value noise fixed in world coordinates, sampled for one layer's view box."""

    def __init__(self, seed: int, size: tuple[int, int]):
        self.seed, self.size = seed, size
        self.box = (0.0, 0.0, float(size[0]), float(size[1]))

    def __call__(self, key: int, cell: float, octaves: int = 4, gain: float = 0.55) -> np.ndarray:
        w, h = self.size
        x0, y0, x1, y1 = self.box
        total, amp, norm = np.zeros((h, w), np.float32), 1.0, 0.0
        for octave in range(octaves):
            c = max(cell / 2 ** octave, 2.0)
            gw, gh = int(3 * w / c) + 4, int(3 * h / c) + 4
            grid = np.random.default_rng([self.seed, key, octave]).standard_normal((gh, gw))
            box = ((x0 + w) / c, (y0 + h) / c, (x1 + w) / c, (y1 + h) / c)
            total += amp * np.asarray(Image.fromarray(grid.astype(np.float32), "F").resize(
                (w, h), Image.Resampling.BICUBIC, box=box))
            norm += amp * amp
            amp *= gain
        return total / math.sqrt(norm)


def ridge(seed: int, xs: np.ndarray, width: float, cell: float, octaves: int = 5) -> np.ndarray:
    """1-D fractal noise along world x (mountains, rooflines)."""
    out, amp = np.zeros_like(xs), 1.0
    for octave in range(octaves):
        c = cell / 2 ** octave
        grid_x = np.arange(-width, 2 * width + c, c)
        values = np.random.default_rng([seed, 77, octave]).standard_normal(len(grid_x))
        out += amp * np.interp(xs, grid_x, values)
        amp *= 0.5
    return out


def lerp(a: Colour, b: Colour, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


# -- scene kinds --------------------------------------------------------------------------


def add_tree(prims: list[Prim], rng: np.random.Generator, x: float, base: float, scale: float,
             depth: float, group: int) -> None:
    trunk = jitter_colour(rng, col(85, 60, 40), 12)
    prims.append(Prim("rect", depth, trunk, group, x - 0.05 * scale, base - 0.7 * scale,
                      x + 0.05 * scale, base, shade=0.3))
    green = jitter_colour(rng, col(60, 110, 45), 20)
    for _ in range(int(rng.integers(3, 7))):
        r = scale * rng.uniform(0.25, 0.45)
        prims.append(Prim("ellipse", depth, jitter_colour(rng, green, 12), group,
                          x + rng.normal(0, 0.2 * scale), base - scale * rng.uniform(0.75, 1.2), r,
                          r * rng.uniform(0.8, 1.1), shade=0.6))


def add_house(prims: list[Prim], rng: np.random.Generator, x: float, base: float, scale: float,
              depth: float, group: int) -> None:
    w, h = scale * rng.uniform(0.8, 1.4), scale * rng.uniform(0.5, 0.8)
    wall = jitter_colour(rng, col(215, 200, 170), 25)
    prims.append(Prim("rect", depth, wall, group, x - w / 2, base - h, x + w / 2, base, shade=0.15))
    roof = jitter_colour(rng, col(150, 60, 45), 30)
    prims.append(Prim("poly", depth, roof, group, points=[(x - w * 0.6, base - h),
                      (x + w * 0.6, base - h), (x, base - h - scale * rng.uniform(0.3, 0.55))], shade=0.2))
    prims.append(Prim("rect", depth, col(70, 50, 40), group, x - w * 0.08, base - h * 0.5, x + w * 0.08, base))
    for side in (-1, 1):
        cx = x + side * w * 0.28
        prims.append(Prim("rect", depth, col(60, 75, 95), group, cx - w * 0.08, base - h * 0.75,
                          cx + w * 0.08, base - h * 0.45, shade=0.4))


def add_person(prims: list[Prim], rng: np.random.Generator, x: float, base: float, height: float,
               depth: float, group: int) -> None:
    skin = jitter_colour(rng, col(190, 140, 105), 30)
    cloth = palette(rng)
    prims.append(Prim("rect", depth, jitter_colour(rng, col(50, 50, 60), 20), group, x - height * 0.09,
                      base - height * 0.45, x + height * 0.09, base, shade=0.2))
    prims.append(Prim("ellipse", depth, cloth, group, x, base - height * 0.62, height * 0.13,
                      height * 0.2, shade=0.5))
    prims.append(Prim("ellipse", depth, skin, group, x, base - height * 0.9, height * 0.07,
                      height * 0.09, shade=0.6))
    prims.append(Prim("ellipse", depth, col(35, 28, 25), group, x, base - height * 0.96, height * 0.075,
                      height * 0.045, shade=0.3))


def landscape(rng: np.random.Generator, w: int, h: int) -> tuple[list[Layer], list[Prim]]:
    horizon = h * rng.uniform(0.35, 0.6)
    sunset = rng.random() < 0.3
    top = jitter_colour(rng, col(60, 80, 150) if sunset else col(70, 130, 205), 15)
    low = jitter_colour(rng, col(240, 160, 100) if sunset else col(190, 215, 235), 12)
    sun = (rng.uniform(0, w), horizon * rng.uniform(0.2, 0.9))
    cloudy = rng.uniform(-0.3, 1.0)
    s = int(rng.integers(1 << 30))

    def sky(xx: np.ndarray, yy: np.ndarray, noise: Noise):
        t = np.clip(yy / horizon, 0, 1) ** 0.8 + 0 * xx
        rgb = lerp(top, low, t)
        glow = np.exp(-((xx - sun[0]) ** 2 + (yy - sun[1]) ** 2) / (2 * (0.25 * w) ** 2))
        rgb += glow[..., None] * (col(60, 40, 10) if sunset else col(30, 30, 25))
        n = noise(s + 1, w / 3, 5)
        cover = np.clip((n - 1.0 + cloudy) * 1.5, 0, 0.9)[..., None]
        cloud = (col(245, 240, 235) if not sunset else col(235, 170, 140)) * (0.85 + 0.1 * n[..., None])
        return rgb * (1 - cover) + cloud * cover, None

    layers: list[Layer] = [(0.0, sky)]
    for i in range(int(rng.integers(1, 4))):
        far = (i + 1) / 4
        height = h * rng.uniform(0.08, 0.25) * (1.2 - far * 0.5)
        colour = lerp(jitter_colour(rng, col(70, 90, 80), 20), low, np.array(0.55 * (1 - far)))
        ks = s + 10 + i

        def mountain(xx, yy, noise, height=height, colour=colour, ks=ks):
            crest = horizon - height * (0.6 + 0.4 * ridge(ks, xx[0], w, w / 3))
            alpha = np.clip(yy - crest[None, :] + 0.5, 0, 1)
            tex = 1 + 0.12 * noise(ks, w / 12, 5)
            return colour * tex[..., None] * (1 - 0.15 * np.clip((yy - crest) / height, 0, 1))[..., None], alpha

        layers.append((0.03 + 0.05 * i, mountain))
    ground_far = jitter_colour(rng, col(110, 140, 70), 30)
    ground_near = jitter_colour(rng, col(80, 100, 45), 25)
    water = rng.random() < 0.3
    shore = horizon + (h - horizon) * rng.uniform(0.15, 0.4) if water else horizon

    if water:
        def lake(xx, yy, noise):
            streak = 1 + 0.08 * noise(s + 5, w / 40, 3) * (1 + 0 * xx)
            t = np.clip((yy - horizon) / (shore - horizon), 0, 1)
            rgb = lerp(low * 0.85, top * 0.8, t) * streak[..., None]
            return rgb, ((yy >= horizon) & (yy < shore + 2)).astype(np.float32) + 0 * xx

        layers.append((0.15, lake))

    def ground(xx, yy, noise):
        t = np.clip((yy - shore) / (h - shore), 0, 1) + 0 * xx
        tex = 1 + 0.22 * noise(s + 3, w / 5, 6, 0.65)
        return lerp(ground_far, ground_near, t) * tex[..., None], np.clip(yy - shore + 0.5, 0, 1) + 0 * xx

    layers.append((0.3, ground))
    prims: list[Prim] = []
    for g in range(int(rng.integers(2, 10))):
        base = shore + (h - shore) * rng.uniform(0.05, 1.0)
        near = (base - horizon) / (h - horizon)
        scale = h * (0.1 + 0.4 * near)
        depth = 0.3 + 0.7 * near
        x = rng.uniform(-0.1, 1.1) * w
        choice = rng.random()
        if choice < 0.55:
            add_tree(prims, rng, x, base, scale, depth, g)
        elif choice < 0.8:
            add_house(prims, rng, x, base, scale * 0.8, depth, g)
        else:
            add_person(prims, rng, x, base, scale * 0.9, depth, g)
    prims.sort(key=lambda p: p.depth)
    return layers, prims


def street(rng: np.random.Generator, w: int, h: int) -> tuple[list[Layer], list[Prim]]:
    kerb = h * rng.uniform(0.68, 0.82)
    top = jitter_colour(rng, col(120, 160, 210), 25)
    s = int(rng.integers(1 << 30))

    def sky(xx, yy, noise):
        return lerp(top, top * 0.6 + 90, np.clip(yy / kerb, 0, 1) + 0 * xx), None

    def road(xx, yy, noise):
        tex = 1 + 0.1 * noise(s, w / 30, 5)
        rgb = np.where((yy < kerb + h * 0.05)[..., None], col(160, 155, 150), col(95, 95, 100)) * tex[..., None]
        return rgb, np.clip(yy - kerb + 0.5, 0, 1) + 0 * xx

    prims: list[Prim] = []
    x, g = -0.3 * w, 0
    while x < 1.3 * w:
        bw = w * rng.uniform(0.12, 0.3)
        roof = h * rng.uniform(0.03, 0.45)
        wall = jitter_colour(rng, [col(170, 90, 70), col(210, 195, 160), col(150, 150, 155),
                                   col(190, 170, 200), col(120, 150, 130)][int(rng.integers(5))], 20)
        d = rng.uniform(0.25, 0.4)
        prims.append(Prim("rect", d, wall, g, x, roof, x + bw, kerb, shade=0.25))
        prims.append(Prim("rect", d, wall * 0.7, g, x, roof, x + bw, roof + h * 0.02))
        cols, rows = int(rng.integers(2, 6)), int((kerb - roof) / (h * rng.uniform(0.08, 0.14)))
        glass = jitter_colour(rng, col(70, 85, 110), 15)
        for r in range(max(rows - 1, 0)):
            for c in range(cols):
                cx = x + bw * (c + 0.5) / cols
                cy = roof + (kerb - roof) * (r + 0.5) / rows
                lit = rng.random() < 0.15
                prims.append(Prim("rect", d, col(230, 200, 120) if lit else jitter_colour(rng, glass, 10), g,
                                  cx - bw * 0.3 / cols, cy - h * 0.03, cx + bw * 0.3 / cols, cy + h * 0.03,
                                  shade=0.5))
        if rng.random() < 0.6:
            prims.append(Prim("rect", d, palette(rng), g, x + bw * 0.1, kerb - h * 0.14, x + bw * 0.9,
                              kerb - h * 0.09, shade=0.2))
        x += bw
        g += 1
    for _ in range(int(rng.integers(0, 4))):
        cx, cw = rng.uniform(0, w), w * rng.uniform(0.15, 0.25)
        base = kerb + h * rng.uniform(0.1, 0.2)
        body = palette(rng)
        prims.append(Prim("ellipse", 0.7, body * 0.9, g, cx, base - cw * 0.28, cw * 0.3, cw * 0.16, shade=0.5))
        prims.append(Prim("rect", 0.7, body, g, cx - cw / 2, base - cw * 0.25, cx + cw / 2, base - cw * 0.06,
                          shade=0.4))
        for side in (-1, 1):
            prims.append(Prim("ellipse", 0.7, col(25, 25, 28), g, cx + side * cw * 0.3, base - cw * 0.06,
                              cw * 0.08, cw * 0.08, shade=0.3))
        g += 1
    for _ in range(int(rng.integers(0, 6))):
        base = kerb + h * rng.uniform(0.0, 0.15)
        add_person(prims, rng, rng.uniform(0, w), base, h * rng.uniform(0.2, 0.35), 0.8, g)
        g += 1
    return [(0.0, sky), (0.5, road)], prims


def add_bowl(prims: list[Prim], rng: np.random.Generator, x: float, y: float, r: float, depth: float,
             group: int) -> None:
    ceramic = jitter_colour(rng, [col(235, 232, 225), col(60, 70, 90), col(150, 90, 60),
                                  col(200, 180, 140)][int(rng.integers(4))], 12)
    prims.append(Prim("ellipse", depth, ceramic * 0.6, group, x + r * 0.1, y + r * 0.45, r * 1.05, r * 0.3))
    prims.append(Prim("ellipse", depth, ceramic, group, x, y + r * 0.1, r, r * 0.55, shade=0.6))
    prims.append(Prim("ellipse", depth, ceramic * 1.05, group, x, y - r * 0.15, r, r * 0.35, shade=0.2))
    food = palette(rng)
    prims.append(Prim("ellipse", depth, food, group, x, y - r * 0.15, r * 0.88, r * 0.28, shade=0.4,
                      stripes=(r * 0.15, rng.uniform(0, 3), 0.12)))
    for _ in range(int(rng.integers(0, 10))):
        prims.append(Prim("ellipse", depth, palette(rng), group, x + rng.uniform(-0.6, 0.6) * r,
                          y - r * 0.15 + rng.uniform(-0.15, 0.15) * r, r * 0.1, r * 0.06,
                          angle=rng.uniform(0, 3), shade=0.6))


def food_table(rng: np.random.Generator, w: int, h: int) -> tuple[list[Layer], list[Prim]]:
    edge = h * rng.uniform(0.25, 0.55)
    wall = jitter_colour(rng, col(200, 185, 160), 35)
    wood = jitter_colour(rng, col(140, 95, 60), 25)
    cloth = rng.random() < 0.3
    cloth_colour = palette(rng)
    s = int(rng.integers(1 << 30))

    def back(xx, yy, noise):
        light = 1 + 0.15 * np.exp(-((xx - w * 0.2) ** 2) / (2 * (0.4 * w) ** 2)) - 0.1 * yy / h
        return wall * (light * (1 + 0.05 * noise(s, w / 8, 4)))[..., None], None

    def table(xx, yy, noise):
        if cloth:
            check = ((np.floor(xx / (w * 0.08)) + np.floor(yy / (h * 0.08))) % 2)
            rgb = lerp(cloth_colour, col(240, 236, 228), check * 0.8) * (1 + 0.05 * noise(s + 1, w / 20, 3))[..., None]
        else:
            grain = np.sin(2 * np.pi * (yy / (h * 0.03) + 2.5 * noise(s + 2, w / 3, 3))) + 0 * xx
            rgb = wood * (1 + 0.1 * grain + 0.1 * noise(s + 3, w / 15, 5))[..., None]
        return rgb * (0.85 + 0.2 * (yy - edge) / h)[..., None], np.clip(yy - edge + 0.5, 0, 1) + 0 * xx

    prims: list[Prim] = []
    if rng.random() < 0.5:  # a window or a picture on the wall
        x0, y0 = rng.uniform(0.05, 0.6) * w, rng.uniform(0.0, 0.15) * h
        fw, fh = w * rng.uniform(0.2, 0.35), max(edge - y0 - h * 0.05, h * 0.1)
        prims.append(Prim("rect", 0.1, col(90, 70, 55), 99, x0, y0, x0 + fw, y0 + fh))
        prims.append(Prim("rect", 0.1, jitter_colour(rng, col(200, 215, 225), 20), 99, x0 + fw * 0.05,
                          y0 + fh * 0.05, x0 + fw * 0.95, y0 + fh * 0.95, shade=0.3))
    items = int(rng.integers(2, 9))
    for g in range(items):
        y = edge + (h - edge) * rng.uniform(0.2, 0.85)
        r = w * rng.uniform(0.06, 0.15) * (0.6 + 0.6 * (y - edge) / (h - edge))
        x = rng.uniform(0.05, 0.95) * w
        depth = 0.5 + 0.5 * (y - edge) / (h - edge)
        kind = rng.random()
        if kind < 0.5:
            add_bowl(prims, rng, x, y, r, depth, g)
        elif kind < 0.7:
            plate = jitter_colour(rng, col(240, 238, 230), 8)
            prims.append(Prim("ellipse", depth, plate * 0.8, g, x, y + r * 0.05, r * 1.2, r * 0.45))
            prims.append(Prim("ellipse", depth, plate, g, x, y, r * 1.15, r * 0.4, shade=0.2))
            for _ in range(int(rng.integers(1, 6))):
                prims.append(Prim("ellipse", depth, palette(rng), g, x + rng.uniform(-0.6, 0.6) * r,
                                  y + rng.uniform(-0.15, 0.15) * r, r * rng.uniform(0.15, 0.35),
                                  r * rng.uniform(0.08, 0.2), angle=rng.uniform(0, 3), shade=0.7))
        elif kind < 0.85:
            cup = palette(rng)
            prims.append(Prim("rect", depth, cup, g, x - r * 0.35, y - r * 0.9, x + r * 0.35, y, shade=0.4,
                              stripes=(r * 0.2, 0.0, 0.1 * rng.random())))
            prims.append(Prim("ellipse", depth, cup * 0.5, g, x, y - r * 0.9, r * 0.35, r * 0.1))
        else:
            fruit = palette(rng)
            for _ in range(int(rng.integers(1, 5))):
                prims.append(Prim("ellipse", depth, jitter_colour(rng, fruit, 10), g,
                                  x + rng.uniform(-r, r), y + rng.uniform(-0.2, 0.2) * r, r * 0.3, r * 0.28,
                                  shade=0.8))
    prims.sort(key=lambda p: p.depth)
    return [(0.1, back), (0.4, table)], prims


def studio(rng: np.random.Generator, w: int, h: int) -> tuple[list[Layer], list[Prim]]:
    """A product-style shot on a plain, smooth backdrop: large near-uniform margins."""
    backdrop = jitter_colour(rng, [col(235, 235, 232), col(60, 62, 70), col(200, 190, 170)][int(rng.integers(3))], 8)
    s = int(rng.integers(1 << 30))

    def paper(xx, yy, noise):
        fall = 1 - 0.12 * ((xx - w / 2) ** 2 / w ** 2 + (yy - h * 0.4) ** 2 / h ** 2)
        return backdrop * (fall * (1 + 0.01 * noise(s, w / 4, 2)))[..., None], None

    prims: list[Prim] = []
    for g in range(int(rng.integers(1, 4))):
        x, y = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.45, 0.7)
        r = min(w, h) * rng.uniform(0.12, 0.25)
        prims.append(Prim("ellipse", 0.2, backdrop * 0.75, g, x + r * 0.2, y + r * 0.9, r * 1.1, r * 0.18))
        if rng.random() < 0.5:
            add_bowl(prims, rng, x, y, r, 0.8, g)
        else:
            obj = palette(rng)
            prims.append(Prim("rect", 0.8, obj, g, x - r * 0.4, y - r * 1.6, x + r * 0.4, y + r * 0.8,
                              shade=0.5, stripes=(r * 0.3, 1.57, 0.15 * rng.random())))
            prims.append(Prim("ellipse", 0.8, obj * 0.8, g, x, y - r * 1.6, r * 0.4, r * 0.12))
    return [(0.1, paper)], prims


def portrait(rng: np.random.Generator, w: int, h: int) -> tuple[list[Layer], list[Prim]]:
    outdoor = rng.random() < 0.5
    a = jitter_colour(rng, col(80, 120, 60) if outdoor else col(120, 100, 90), 30)
    b = jitter_colour(rng, col(180, 200, 150) if outdoor else col(210, 190, 170), 30)
    s = int(rng.integers(1 << 30))

    def bokeh(xx, yy, noise):
        n = noise(s, w / 3, 3) + 0 * xx
        return lerp(a, b, np.clip(0.5 + 0.4 * n, 0, 1)), None

    prims: list[Prim] = []
    for _ in range(int(rng.integers(5, 25))):
        r = w * rng.uniform(0.02, 0.06)
        prims.append(Prim("ellipse", 0.05, np.minimum(b * 1.25, 250), 50, rng.uniform(0, w), rng.uniform(0, h),
                          r, r, shade=-0.3))
    cx = w * rng.uniform(0.35, 0.65)
    head = min(w, h) * rng.uniform(0.1, 0.17)
    cy = h * rng.uniform(0.3, 0.45)
    skin = jitter_colour(rng, col(185, 135, 100), 35)
    cloth = palette(rng)
    hair = jitter_colour(rng, col(40, 30, 25), 15)
    prims.append(Prim("ellipse", 0.9, cloth, 1, cx, cy + head * 3.2, head * 2.6, head * 2.0, shade=0.4,
                      stripes=(head * rng.uniform(0.2, 0.6), rng.uniform(0, 3), 0.2 * rng.random())))
    prims.append(Prim("rect", 0.9, skin * 0.85, 1, cx - head * 0.35, cy + head * 0.6, cx + head * 0.35,
                      cy + head * 1.4, shade=0.3))
    prims.append(Prim("ellipse", 0.9, hair, 1, cx, cy - head * 0.1, head * 1.1, head * 1.25, shade=0.3))
    prims.append(Prim("ellipse", 0.9, skin, 1, cx, cy + head * 0.05, head * 0.82, head * 1.05, shade=0.7))
    prims.append(Prim("ellipse", 0.9, hair, 1, cx, cy - head * 0.75, head * 0.9, head * 0.4, shade=0.3))
    for side in (-1, 1):
        prims.append(Prim("ellipse", 0.9, col(245, 240, 235), 1, cx + side * head * 0.33, cy - head * 0.05,
                          head * 0.15, head * 0.08))
        prims.append(Prim("ellipse", 0.9, col(45, 35, 30), 1, cx + side * head * 0.33, cy - head * 0.05,
                          head * 0.07, head * 0.07))
        prims.append(Prim("rect", 0.9, hair, 1, cx + side * head * 0.33 - head * 0.17, cy - head * 0.27,
                          cx + side * head * 0.33 + head * 0.17, cy - head * 0.22))
    prims.append(Prim("ellipse", 0.9, col(160, 70, 70), 1, cx, cy + head * 0.55, head * 0.25, head * 0.08,
                      shade=0.3))
    prims.append(Prim("ellipse", 0.9, skin * 0.8, 1, cx, cy + head * 0.25, head * 0.1, head * 0.15, shade=0.5))
    if rng.random() < 0.4:  # headwear
        prims.append(Prim("ellipse", 0.9, palette(rng), 1, cx, cy - head * 0.95, head * 1.3, head * 0.35,
                          shade=0.5, stripes=(head * 0.3, 0.0, 0.2)))
    return [(0.05, bokeh)], prims


def plants(rng: np.random.Generator, w: int, h: int) -> tuple[list[Layer], list[Prim]]:
    dark = jitter_colour(rng, col(25, 50, 20), 10)
    leaf = jitter_colour(rng, col(90, 150, 60), 25)
    s = int(rng.integers(1 << 30))

    def foliage(xx, yy, noise):
        n = noise(s, w / 6, 6, 0.7) + 0 * xx
        return lerp(dark, leaf, np.clip(0.5 + 0.35 * n, 0, 1)), None

    prims: list[Prim] = []
    for g in range(int(rng.integers(10, 40))):
        x, y = rng.uniform(-0.05, 1.05) * w, rng.uniform(-0.05, 1.05) * h
        d = rng.uniform(0.3, 1.0)
        size = min(w, h) * rng.uniform(0.02, 0.07) * (0.6 + d)
        if rng.random() < 0.5:
            prims.append(Prim("ellipse", d, jitter_colour(rng, leaf, 20), g, x, y, size * 2, size * 0.7,
                              angle=rng.uniform(0, 3.14), shade=0.5))
        else:
            petal = palette(rng)
            n = int(rng.integers(5, 9))
            for k in range(n):
                t = 2 * math.pi * k / n
                prims.append(Prim("ellipse", d, jitter_colour(rng, petal, 8), g, x + math.cos(t) * size,
                                  y + math.sin(t) * size, size, size * 0.45, angle=t, shade=0.4))
            prims.append(Prim("ellipse", d, col(220, 180, 40), g, x, y, size * 0.5, size * 0.5, shade=0.7))
    prims.sort(key=lambda p: p.depth)
    return [(0.1, foliage)], prims


def market(rng: np.random.Generator, w: int, h: int) -> tuple[list[Layer], list[Prim]]:
    back = jitter_colour(rng, col(60, 50, 45), 20)
    s = int(rng.integers(1 << 30))

    def stall(xx, yy, noise):
        return back * (1 + 0.15 * noise(s, w / 10, 4) - 0.2 * (yy / h) + 0 * xx)[..., None], None

    prims: list[Prim] = []
    stripe_a, stripe_b = palette(rng), jitter_colour(rng, col(235, 230, 220), 10)
    awning = h * rng.uniform(0.1, 0.25)
    n = int(rng.integers(6, 14))
    for k in range(-2, n + 2):
        x0 = w * k / n
        prims.append(Prim("poly", 0.4, stripe_a if k % 2 else stripe_b, 0,
                          points=[(x0, 0), (x0 + w / n, 0), (x0 + w / n, awning), (x0 + w / (2 * n), awning * 1.1),
                                  (x0, awning)], shade=0.3))
    rows = int(rng.integers(2, 4))
    g = 1
    for r in range(rows):
        top = awning + (h - awning) * (r + 0.3) / rows
        depth = 0.5 + 0.4 * r / rows
        crates = int(rng.integers(3, 7))
        for c in range(crates):
            x0, x1 = w * (c + 0.05) / crates, w * (c + 0.95) / crates
            y1 = top + (h - awning) * 0.55 / rows
            prims.append(Prim("rect", depth, jitter_colour(rng, col(150, 110, 70), 15), g, x0, top, x1, y1, shade=0.3))
            fruit = palette(rng)
            fr = (x1 - x0) * rng.uniform(0.06, 0.12)
            for _ in range(int((x1 - x0) / fr * 1.5)):
                prims.append(Prim("ellipse", depth, jitter_colour(rng, fruit, 10), g, rng.uniform(x0 + fr, x1 - fr),
                                  top + rng.uniform(-0.3, 0.6) * fr * 2, fr, fr * rng.uniform(0.85, 1.0),
                                  shade=0.8))
            if rng.random() < 0.5:
                prims.append(Prim("rect", depth, col(240, 238, 230), g, x0 + (x1 - x0) * 0.3, y1 - (y1 - top) * 0.35,
                                  x0 + (x1 - x0) * 0.7, y1 - (y1 - top) * 0.1))
                prims.append(Prim("rect", depth, col(40, 40, 40), g, x0 + (x1 - x0) * 0.35, y1 - (y1 - top) * 0.27,
                                  x0 + (x1 - x0) * 0.6, y1 - (y1 - top) * 0.2))
            g += 1
    return [(0.1, stall)], prims


KINDS = (("landscape", landscape), ("street", street), ("food", food_table), ("studio", studio),
         ("portrait", portrait), ("plants", plants), ("market", market))
KIND_WEIGHTS = np.array([0.22, 0.15, 0.2, 0.08, 0.13, 0.1, 0.12])


def make_scene(seed: int) -> tuple[str, Scene]:
    rng = np.random.default_rng([seed, 1])
    kind_index = int(rng.choice(len(KINDS), p=KIND_WEIGHTS / KIND_WEIGHTS.sum()))
    name, build = KINDS[kind_index]
    long_side = int(rng.integers(960, 1100))
    short_side = int(long_side * rng.choice([0.75, 0.75, 0.667, 0.5625]))
    tall = rng.random() < (0.6 if name == "portrait" else 0.3)
    w, h = (short_side, long_side) if tall else (long_side, short_side)
    layers, prims = build(rng, w, h)
    angle = rng.uniform(0, 2 * math.pi)
    return name, Scene(size=(w, h), seed=seed, layers=layers, prims=prims,
                       light=(math.cos(angle), math.sin(angle)), blur=rng.uniform(0.6, 1.4),
                       noise=rng.uniform(1.5, 4.5), vignette=rng.uniform(0.05, 0.35),
                       tilt=(rng.uniform(0, 0.15), rng.uniform(0, 2 * math.pi)),
                       shadow=rng.uniform(0.03, 0.12) if name != "studio" else 0.01)


# -- rendering ----------------------------------------------------------------------------


def _project(view: View, size: tuple[int, int], depth: float, x: float, y: float) -> tuple[float, float, float]:
    w, h = size
    parallax = 0.15 + 0.85 * depth
    zoom = 1 + (view.zoom - 1) * (0.4 + 0.6 * depth)
    return (w / 2 + (x - w / 2 - view.shift[0] * w * parallax) * zoom,
            h / 2 + (y - h / 2 - view.shift[1] * h * parallax) * zoom, zoom)


def _blend(canvas: np.ndarray, x0: int, y0: int, rgb: np.ndarray, alpha: np.ndarray) -> None:
    h, w = alpha.shape
    region = canvas[y0:y0 + h, x0:x0 + w]
    region += (rgb - region) * alpha[..., None]


def _draw(canvas: np.ndarray, prim: Prim, view: View, offset: tuple[float, float],
          light: tuple[float, float]) -> None:
    height, width = canvas.shape[:2]
    size = (width, height)
    if prim.kind == "ellipse":
        cx, cy, z = _project(view, size, prim.depth, prim.x + offset[0], prim.y + offset[1])
        rx, ry = prim.a * z, prim.b * z
        reach = max(rx, ry) + 2
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, width)
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, height)
        if x0 >= x1 or y0 >= y1:
            return
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        c, s = math.cos(prim.angle), math.sin(prim.angle)
        u, v = (xs * c + ys * s) / rx, (-xs * s + ys * c) / ry
        r = np.sqrt(u * u + v * v)
        alpha = np.clip((1 - r) * min(rx, ry) + 0.5, 0, 1)
        if not alpha.any():
            return
        sphere = np.sqrt(np.clip(1 - r * r, 0, 1))
        lam = 1 + prim.shade * (0.5 * sphere - 0.3 - 0.35 * (u * light[0] + v * light[1]))
        if prim.stripes[2]:
            period, angle, amp = prim.stripes
            phase = (xs * math.cos(angle) + ys * math.sin(angle)) / (period * z)
            lam = lam * (1 + amp * np.sign(np.sin(2 * np.pi * phase)))
        _blend(canvas, x0, y0, prim.colour * lam[..., None], alpha)
    elif prim.kind == "rect":
        ax, ay, z = _project(view, size, prim.depth, prim.x + offset[0], prim.y + offset[1])
        bx, by, _ = _project(view, size, prim.depth, prim.a + offset[0], prim.b + offset[1])
        x0, x1 = max(int(ax) - 1, 0), min(int(bx) + 2, width)
        y0, y1 = max(int(ay) - 1, 0), min(int(by) + 2, height)
        if x0 >= x1 or y0 >= y1:
            return
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        alpha = np.clip(np.minimum(np.minimum(xs - ax, bx - xs), np.minimum(ys - ay, by - ys)) + 0.5, 0, 1)
        t = (ys - ay) / max(by - ay, 1.0) - 0.5
        lam = 1 + prim.shade * (0.25 * light[1] * t - 0.2 * t) + 0 * xs
        if prim.stripes[2]:
            period, angle, amp = prim.stripes
            phase = ((xs - ax) * math.cos(angle) + (ys - ay) * math.sin(angle)) / (period * z)
            lam = lam * (1 + amp * np.sign(np.sin(2 * np.pi * phase)))
        _blend(canvas, x0, y0, prim.colour * lam[..., None], alpha)
    else:
        pts = [_project(view, size, prim.depth, px + offset[0], py + offset[1])[:2] for px, py in prim.points]
        xs_, ys_ = [p[0] for p in pts], [p[1] for p in pts]
        x0, x1 = max(int(min(xs_)) - 1, 0), min(int(max(xs_)) + 2, width)
        y0, y1 = max(int(min(ys_)) - 1, 0), min(int(max(ys_)) + 2, height)
        if x0 >= x1 or y0 >= y1:
            return
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(mask).polygon([(px - x0, py - y0) for px, py in pts], fill=255)
        alpha = np.asarray(mask, dtype=np.float32) / 255
        t = np.linspace(-0.5, 0.5, y1 - y0, dtype=np.float32)[:, None]
        lam = (1 + prim.shade * 0.4 * t) + 0 * alpha
        _blend(canvas, x0, y0, prim.colour * lam[..., None], alpha)


def render(scene: Scene, view: View) -> Image.Image:
    w, h = scene.size
    canvas = np.zeros((h, w, 3), np.float32)
    noise = Noise(scene.seed, scene.size)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    def world(depth: float) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates of the pixels for a layer at `depth`; points `noise` there."""
        parallax = 0.15 + 0.85 * depth
        zoom = 1 + (view.zoom - 1) * (0.4 + 0.6 * depth)
        wx = w / 2 + (xs - w / 2) / zoom + view.shift[0] * w * parallax
        wy = h / 2 + (ys - h / 2) / zoom + view.shift[1] * h * parallax
        noise.box = (float(wx[0, 0]), float(wy[0, 0]), float(wx[0, -1]) + 1 / zoom, float(wy[-1, 0]) + 1 / zoom)
        return wx, wy

    for depth, layer in scene.layers:
        rgb, alpha = layer(*world(depth), noise)
        _blend(canvas, 0, 0, rgb, np.ones((h, w), np.float32) if alpha is None else alpha)
    rng = np.random.default_rng([scene.seed, view.seed, 2])
    offsets: dict[int, tuple[float, float]] = {}
    for prim in scene.prims:
        if prim.group not in offsets:
            offsets[prim.group] = ((rng.normal(0, view.jitter * w), rng.normal(0, view.jitter * w * 0.3))
                                   if view.jitter else (0.0, 0.0))
        _draw(canvas, prim, view, offsets[prim.group], scene.light)
    # Uneven light (soft shadows) and fine surface texture, fixed in the scene.
    world(0.5)
    canvas *= (1 + scene.shadow * noise(991, w / 2.5, 3) + 0.025 * noise(992, w / 120, 2))[..., None]
    # Optics and sensor: exposure, light fall-off, lens softness, vignette, noise.
    amp, angle = scene.tilt
    gain = view.exposure * (1 + amp * ((xs / w - 0.5) * math.cos(angle) + (ys / h - 0.5) * math.sin(angle)))
    radius = ((xs / w - 0.5) ** 2 + (ys / h - 0.5) ** 2) * 2
    canvas *= (gain * (1 - scene.vignette * radius ** 1.5))[..., None]
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    image = image.filter(ImageFilter.GaussianBlur(scene.blur))
    grain = rng.normal(0, scene.noise, (h, w, 1)) + rng.normal(0, scene.noise * 0.5, (h, w, 3))
    pixels = np.asarray(image).astype(np.float32) + grain
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")


# ----------------------------------------------------------------------------------------
# Transformations
# ----------------------------------------------------------------------------------------

# (name, group): groups with a target are listed in TARGETS.
TRANSFORMS = [
    ("jpeg q90", "re-encode"), ("jpeg q70", "re-encode"), ("jpeg q50", "re-encode"), ("jpeg q30", "re-encode"),
    ("resize 50%", "resize"), ("resize 25%", "resize"),
    ("crop 5% one side", "crop 5%"), ("crop 5% two sides", "crop 5%"),
    ("crop 15% one side", "crop 15%"), ("crop 15% two sides", "crop 15%"),
    ("mirror", "mirror"), ("rotate 90", "rotation"), ("rotate 180", "rotation"), ("rotate 270", "rotation"),
    ("EXIF-rotated", "EXIF rotation"),
    ("brightness +15%", "light edit"), ("brightness -15%", "light edit"),
    ("contrast +20%", "light edit"), ("contrast -20%", "light edit"),
    ("white border 5%", "border"), ("black letterbox", "border"),
    ("screenshot, plain viewer", "screenshot"), ("screenshot, phone UI", "screenshot"),
]
HARD = ["hard: burst (small move)", "hard: re-shot (moved)"]
# group -> which decision must reach 0.95 recall
TARGETS = {"re-encode": "dup", "resize": "dup", "mirror": "dup", "rotation": "dup", "EXIF rotation": "dup",
           "border": "dup", "light edit": "dup", "crop 5%": "review"}
EXIF_ORIENTATIONS = (6, 8, 3)
_STORE_FOR = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def _jpeg(im: Image.Image, path: Path, quality: int = 90, **kwargs) -> Path:
    im.save(path, "JPEG", quality=quality, **kwargs)
    return path


def _crop(im: Image.Image, fraction: float, split: float) -> Image.Image:
    w, h = im.size
    cut = round(w * fraction)
    left = round(cut * split)
    return im.crop((left, 0, w - (cut - left), h))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _screenshot_plain(im: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (1920, 1080), (32, 32, 34))
    fitted = ImageOps.contain(im, (1600, 900), Image.Resampling.LANCZOS)
    canvas.paste(fitted, ((1920 - fitted.width) // 2, (1080 - fitted.height) // 2))
    return canvas


def _screenshot_phone(im: Image.Image) -> Image.Image:
    w, h = 1080, 2340
    canvas = Image.new("RGB", (w, h), (0, 0, 0))
    fitted = ImageOps.contain(im, (w, h - 400), Image.Resampling.LANCZOS)
    canvas.paste(fitted, ((w - fitted.width) // 2, (h - fitted.height) // 2))
    draw = ImageDraw.Draw(canvas)
    draw.text((48, 22), "9:41", fill=(255, 255, 255), font=_font(40))
    for k in range(4):  # signal bars, battery
        draw.rectangle((860 + k * 16, 52 - k * 8, 870 + k * 16, 62), fill=(255, 255, 255))
    draw.rounded_rectangle((940, 28, 1010, 62), 8, outline=(255, 255, 255), width=3)
    draw.rectangle((946, 34, 990, 56), fill=(255, 255, 255))
    for k in range(4):  # viewer toolbar icons
        x = 135 + k * 270
        draw.rounded_rectangle((x - 28, h - 210, x + 28, h - 154), 10, outline=(230, 230, 230), width=4)
    draw.rounded_rectangle((w / 2 - 180, h - 40, w / 2 + 180, h - 28), 6, fill=(200, 200, 200))
    return canvas


def write_transforms(base_path: Path, out: Path, rng: np.random.Generator, index: int) -> list[tuple[str, Path]]:
    with Image.open(base_path) as opened:
        im = opened.convert("RGB")
    w, h = im.size
    files: list[tuple[str, Path]] = []

    def add(name: str, path: Path) -> None:
        files.append((name, path))

    for q in (90, 70, 50, 30):
        add(f"jpeg q{q}", _jpeg(im, out / f"q{q}.jpg", q))
    add("resize 50%", _jpeg(im.resize((w // 2, h // 2), Image.Resampling.LANCZOS), out / "r50.jpg"))
    add("resize 25%", _jpeg(im.resize((w // 4, h // 4), Image.Resampling.LANCZOS), out / "r25.jpg"))
    for pct in (5, 15):
        add(f"crop {pct}% one side", _jpeg(_crop(im, pct / 100, float(rng.integers(2))), out / f"c{pct}a.jpg"))
        add(f"crop {pct}% two sides", _jpeg(_crop(im, pct / 100, rng.uniform(0.3, 0.7)), out / f"c{pct}b.jpg"))
    add("mirror", _jpeg(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), out / "mirror.jpg"))
    for name, op in (("rotate 90", Image.Transpose.ROTATE_90), ("rotate 180", Image.Transpose.ROTATE_180),
                     ("rotate 270", Image.Transpose.ROTATE_270)):
        add(name, _jpeg(im.transpose(op), out / f"{name.replace(' ', '')}.jpg"))
    orientation = EXIF_ORIENTATIONS[index % len(EXIF_ORIENTATIONS)]
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = im.transpose(_STORE_FOR[orientation])
    add("EXIF-rotated", _jpeg(stored, out / "exif.jpg", exif=exif.tobytes()))
    with Image.open(out / "exif.jpg") as check:  # displayed image == original
        shown = np.asarray(ImageOps.exif_transpose(check).convert("RGB"), dtype=np.float32)
        assert shown.shape == np.asarray(im).shape and np.abs(shown - np.asarray(im)).mean() < 4, "EXIF copy"
    for name, enhancer, factor in (("brightness +15%", ImageEnhance.Brightness, 1.15),
                                   ("brightness -15%", ImageEnhance.Brightness, 0.85),
                                   ("contrast +20%", ImageEnhance.Contrast, 1.2),
                                   ("contrast -20%", ImageEnhance.Contrast, 0.8)):
        add(name, _jpeg(enhancer(im).enhance(factor), out / f"{name[:4]}{factor}.jpg"))
    add("white border 5%", _jpeg(ImageOps.expand(im, round(0.05 * min(w, h)), (255, 255, 255)), out / "white.jpg"))
    side = max(w, h)
    box = Image.new("RGB", (side, side), (0, 0, 0))
    box.paste(im, ((side - w) // 2, (side - h) // 2))
    add("black letterbox", _jpeg(box, out / "letterbox.jpg"))
    plain = out / "shot_plain.png"
    _screenshot_plain(im).save(plain, compress_level=1)
    add("screenshot, plain viewer", plain)
    phone = out / "shot_phone.png"
    _screenshot_phone(im).save(phone, compress_level=1)
    add("screenshot, phone UI", phone)
    return files


# ----------------------------------------------------------------------------------------
# Hashing (worker processes)
# ----------------------------------------------------------------------------------------


@dataclass
class Item:
    label: str  # "base", a transformation name or a hard-negative name
    scene: int  # images of one scene are never unrelated negatives of each other
    kind: str
    ccub: np.ndarray  # (8, 4) uint64
    common: int  # 64-bit imagehash.phash
    margins: tuple[int, int, int, int]  # trimmed by ccub before hashing (working-copy pixels)


def hash_file(path: Path, limits: AnalysisLimits) -> tuple[np.ndarray, int, tuple[int, int, int, int]]:
    facts = analyze_image(path, path.name, None, None, limits)
    assert facts.ok and facts.phash is not None, (path, facts.error, facts.error_detail)
    with Image.open(path) as im:
        common = int(str(imagehash.phash(im)), 16)
    return np.frombuffer(facts.phash, dtype=np.uint64).reshape(8, 4).copy(), common, facts.margins


def build_group(task: tuple[int, int, str]) -> list[Item]:
    index, seed, root = task
    limits = AnalysisLimits.from_config(Config())
    out = Path(root) / f"{index:04d}"
    out.mkdir(parents=True, exist_ok=True)
    kind, scene = make_scene(seed)
    rng = np.random.default_rng([seed, 3])
    files: list[tuple[str, Path]] = []
    base = out / "base.jpg"
    render(scene, View(seed=0)).save(base, "JPEG", quality=95)
    files.append(("base", base))
    files += write_transforms(base, out, rng, index)
    for k, (name, move, zoom, jitter) in enumerate(((HARD[0], (0.02, 0.05), 0.04, 0.01),
                                                    (HARD[1], (0.06, 0.12), 0.1, 0.03))):
        sign = rng.choice([-1, 1], 2)
        view = View(shift=(sign[0] * rng.uniform(*move), sign[1] * rng.uniform(0, move[0])),
                    zoom=1 + rng.uniform(-zoom, zoom), jitter=jitter, exposure=rng.uniform(0.94, 1.06),
                    seed=k + 1)
        path = out / f"hard{k}.jpg"
        render(scene, view).save(path, "JPEG", quality=95)
        files.append((name, path))
    items = []
    for label, path in files:
        ccub, common, margins = hash_file(path, limits)
        items.append(Item(label, index, kind, ccub, common, margins))
    return items


# ----------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60, help="base images (scenes)")
    parser.add_argument("--unrelated", type=int, default=20000, help="random unrelated pairs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the images here and keep them")
    args = parser.parse_args()

    cfg = Config().duplicates
    dup_t, review_t, common_t = cfg.near_max_distance, cfg.review_max_distance, 10
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        tasks = [(i, args.seed * 100003 + i, str(root)) for i in range(args.images)]
        if args.workers > 1:
            with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
                groups = pool.map(build_group, tasks, chunksize=1)
        else:
            groups = [build_group(t) for t in tasks]
    built = time.perf_counter() - start
    items = [item for group in groups for item in group]
    kinds: dict[str, int] = {}
    for group in groups:
        kinds[group[0].kind] = kinds.get(group[0].kind, 0) + 1

    # Pairs: (ccub distance, common distance) per label.
    rows: dict[str, list[tuple[int, int]]] = {name: [] for name, _ in TRANSFORMS}
    rows.update({name: [] for name in HARD})
    for group in groups:
        base = group[0]
        for item in group[1:]:
            rows[item.label].append((distance(base.ccub, item.ccub), (base.common ^ item.common).bit_count()))
    rng = np.random.default_rng(args.seed + 7)
    scene_of = np.array([item.scene for item in items])
    seen: set[tuple[int, int]] = set()
    unrelated: list[tuple[int, int]] = []
    while len(unrelated) < args.unrelated and len(items) > 1:
        a, b = (int(v) for v in rng.integers(len(items), size=2))
        if scene_of[a] == scene_of[b] or (min(a, b), max(a, b)) in seen:
            continue
        seen.add((min(a, b), max(a, b)))
        unrelated.append((distance(items[a].ccub, items[b].ccub), (items[a].common ^ items[b].common).bit_count()))
    rows["unrelated"] = unrelated
    hashed = time.perf_counter() - start

    arrays = {k: np.array(v, dtype=np.int64).reshape(-1, 2) for k, v in rows.items()}
    group_of = dict(TRANSFORMS)
    rules = {"dup": lambda d: d[:, 0] <= dup_t, "review": lambda d: d[:, 0] <= review_t,
             "common": lambda d: d[:, 1] <= common_t}

    print(f"{args.images} base images ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}); "
          f"{len(items)} files hashed, {len(unrelated)} unrelated pairs; {built:.0f} s build+hash, "
          f"{hashed - built:.1f} s pairs")
    print(f"ccub: 256-bit dihedral pHash, duplicate <= {dup_t}, review <= {review_t}; "
          f"common: imagehash.phash 64-bit, duplicate <= {common_t}\n")
    header = (f"{'pair':<27}{'group':<14}{'n':>6} {'dup':>6} {'dup|rev':>8} {'common':>7}   "
              f"{'ccub d min/med/max':>19} {'p95':>5}   {'common d med':>12}")
    print(header)
    print("-" * len(header))

    def line(name: str, group: str, d: np.ndarray) -> None:
        rates = [rules[r](d).mean() if len(d) else float("nan") for r in ("dup", "review", "common")]
        dist = f"{d[:, 0].min():>5} {np.median(d[:, 0]):>6.0f} {d[:, 0].max():>5}" if len(d) else ""
        print(f"{name:<27}{group:<14}{len(d):>6} {rates[0]:>6.3f} {rates[1]:>8.3f} {rates[2]:>7.3f}   "
              f"{dist:>19} {pct(d[:, 0], 95):>5.0f}   {np.median(d[:, 1]):>12.0f}")

    for name, group in TRANSFORMS:
        line(name, group, arrays[name])
    print("  (negatives: the rate columns are false-positive rates)")
    for name in [*HARD, "unrelated"]:
        line(name, "negative", arrays[name])
    un = arrays["unrelated"][:, 0]
    print(f"  unrelated ccub d percentiles: 0.1% {pct(un, 0.1):.0f}, 1% {pct(un, 1):.0f}, 5% {pct(un, 5):.0f}")

    positives = np.concatenate([arrays[name] for name, _ in TRANSFORMS])
    hard = np.concatenate([arrays[name] for name in HARD])
    negatives = np.concatenate([hard, arrays["unrelated"]])
    print(f"\nprecision over {len(positives)} positive and {len(negatives)} negative pairs "
          f"({len(hard)} hard, {len(arrays['unrelated'])} unrelated):")
    precision: dict[str, float] = {}
    for rule, label in (("dup", f"ccub duplicate (<= {dup_t})"), ("review", f"ccub dup-or-review (<= {review_t})"),
                        ("common", f"common recipe (<= {common_t})")):
        tp, fp = int(rules[rule](positives).sum()), int(rules[rule](negatives).sum())
        fph = int(rules[rule](hard).sum())
        precision[rule] = tp / (tp + fp) if tp + fp else float("nan")
        print(f"  {label:<32} precision {precision[rule]:.4f}  recall {tp / len(positives):.3f}  "
              f"FP {fp} (hard {fph}/{len(hard)}, unrelated {fp - fph})")

    print("\nccub threshold sweep (recall per target group; precision and hard-negative FPs over all pairs):")
    groups_t = list(dict.fromkeys(group_of.values()))
    sweep = (8, 12, 16, 20, 24, 28, 32, 40, 48, 64)
    print(f"  {'group':<16}" + "".join(f"{t:>7}" for t in sweep))
    for group in groups_t:
        d = np.concatenate([arrays[n][:, 0] for n, g in TRANSFORMS if g == group])
        print(f"  {group:<16}" + "".join(f"{(d <= t).mean():>7.3f}" for t in sweep))
    print(f"  {'precision':<16}" + "".join(
        f"{(positives[:, 0] <= t).sum() / max((positives[:, 0] <= t).sum() + (negatives[:, 0] <= t).sum(), 1):>7.3f}"
        for t in sweep))
    print(f"  {'hard FP':<16}" + "".join(f"{int((hard[:, 0] <= t).sum()):>7}" for t in sweep))
    print(f"  {'unrelated FP':<16}" + "".join(f"{int((arrays['unrelated'][:, 0] <= t).sum()):>7}" for t in sweep))

    print("\nccub duplicate-tier recall on the targeted transformations (all but crops), by scene:")
    targeted = [n for n, g in TRANSFORMS if TARGETS.get(g) == "dup"]

    def recall_of(selected: list[list[Item]]) -> str:
        d = np.array([distance(g[0].ccub, it.ccub) for g in selected for it in g[1:] if it.label in targeted])
        return f"{(d <= dup_t).mean():.3f} over {len(d)} pairs" if len(d) else "-"

    for kind in sorted(kinds):
        chosen = [g for g in groups if g[0].kind == kind]
        print(f"  {kind:<10} {len(chosen):>3} bases: {recall_of(chosen)}")
    edged = [g for g in groups if any(g[0].margins)]
    plain = [g for g in groups if not any(g[0].margins)]
    print(f"  bases whose own near-uniform edges ccub trims (sky, backdrop, dark stall; {len(edged)}): "
          f"{recall_of(edged)}")
    print(f"  bases with nothing trimmed ({len(plain)}): {recall_of(plain)}")

    print("\ntargets:")
    met_all = True

    def mark(ok: bool, text: str) -> None:
        nonlocal met_all
        met_all &= ok
        print(f"  [{'met' if ok else 'MISSED'}] {text}")

    mark(precision["dup"] >= 0.99, f"ccub duplicate-tier precision {precision['dup']:.4f} >= 0.99")
    for group, rule in TARGETS.items():
        d = np.concatenate([arrays[n] for n, g in TRANSFORMS if g == group])
        recall = rules[rule](d).mean()
        need = pct(d[:, 0], 95)
        what = "duplicate tier" if rule == "dup" else "dup-or-review"
        mark(recall >= 0.95, f"{group:<14} {what} recall {recall:.3f} >= 0.95 "
                             f"(95% of pairs within d <= {need:.0f})")
    print(f"\n{'all targets met' if met_all else 'some targets missed'}; "
          f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
