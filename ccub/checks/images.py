"""Geometry, colour and quality of the decoded image (after EXIF orientation)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.imaging.analyze import ImageFacts
from ccub.records import Finding, Record


def _usable(record: Record, ctx: Context) -> ImageFacts | None:
    facts = ctx.facts.get(record.image) if record.image else None
    return facts if facts is not None and facts.ok else None


_TRANSFORM_CHECK = {"orientation": "image.orientation", "frames": "image.container",
                    "export": "image.container"}


@dataclass
class Geometry:
    min_short_side_error: int = 256
    min_short_side_warning: int = 512
    max_aspect_warning: float = 3.0
    max_aspect_error: float = 4.0


@dataclass
class Quality:
    # Heuristics run on a working copy whose longer side is at most `work_size` pixels, so
    # they do not depend on the camera's resolution; 384 lets a 12 MP JPEG decode at 1/8
    # scale. They only warn: night festivals and dark interiors are legitimate.
    work_size: int = 384
    dark_mean: float = 0.12
    overexposed_fraction: float = 0.5
    blur_laplacian_var: float = 30.0
    low_information_entropy: float = 3.0
    grayscale_channel_delta: float = 3.0


class GeometryChecks(CheckFamily):
    name = "geometry"
    specs = (
        CheckSpec("geometry.too_small", "error", "The shorter side is below the minimum.",
                  "Upload the original, full-size photo.", ("geometry.min_short_side_error",)),
        CheckSpec("geometry.small", "warning", "The shorter side is below Stable Diffusion's "
                  "512 px training size.", "Upload a larger version if you have one.",
                  ("geometry.min_short_side_warning",)),
        CheckSpec("geometry.aspect", "warning", "The aspect ratio is wide; centre crops lose "
                  "much of the picture.", "Crop to the subject.", ("geometry.max_aspect_warning",)),
        CheckSpec("geometry.aspect_extreme", "error", "The aspect ratio is extreme (panorama, "
                  "screenshot strip).", "Crop to the subject.", ("geometry.max_aspect_error",)),
        CheckSpec("image.orientation", "info", "EXIF orientation was baked into the pixels.",
                  "Nothing to do."),
        CheckSpec("image.colour", "warning", "Colour mode, alpha or ICC profile was normalised "
                  "to RGB/sRGB (alpha composited on white).",
                  "Nothing to do; upload sRGB RGB images to avoid the conversion."),
        CheckSpec("image.container", "info", "The file held several pictures (MPO: only the "
                  "primary one is exported) or its container could not be rewritten losslessly "
                  "(the image was re-encoded).", "Nothing to do."),
        CheckSpec("image.grayscale", "warning", "The picture is grayscale (judged from pixels).",
                  "Keep it only if black-and-white is intended.",
                  ("quality.grayscale_channel_delta",)),
    )

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        facts = _usable(record, ctx)
        if facts is None:
            return
        g = ctx.cfg.geometry
        short, long = sorted((facts.width, facts.height))
        size = f"{facts.width}x{facts.height}"
        if short < g.min_short_side_error:
            yield Finding("geometry.too_small", f"{size}: shorter side {short} px < "
                          f"{g.min_short_side_error} px", record=record.key, file=record.image)
        elif short < g.min_short_side_warning:
            yield Finding("geometry.small", f"{size}: shorter side {short} px < "
                          f"{g.min_short_side_warning} px", record=record.key, file=record.image)
        aspect = long / max(short, 1)
        if aspect > g.max_aspect_error:
            yield Finding("geometry.aspect_extreme", f"{size}: aspect ratio {aspect:.1f} > "
                          f"{g.max_aspect_error}", record=record.key, file=record.image)
        elif aspect > g.max_aspect_warning:
            yield Finding("geometry.aspect", f"{size}: aspect ratio {aspect:.1f} > "
                          f"{g.max_aspect_warning}", record=record.key, file=record.image)
        for kind, text in facts.transforms:
            check = _TRANSFORM_CHECK.get(kind, "image.colour")
            yield Finding(check, text, record=record.key, file=record.image, fixed=text)
        if facts.channel_delta < ctx.cfg.quality.grayscale_channel_delta:
            yield Finding("image.grayscale", f"mean channel difference {facts.channel_delta:.1f}",
                          record=record.key, file=record.image)


class QualityChecks(CheckFamily):
    name = "quality"
    specs = (
        CheckSpec("quality.dark", "warning", "The image is very dark (mean luminance).",
                  "Fine for night scenes; otherwise retake or brighten.", ("quality.dark_mean",)),
        CheckSpec("quality.overexposed", "warning", "Much of the image is blown out to white.",
                  "Retake with less exposure.", ("quality.overexposed_fraction",)),
        CheckSpec("quality.blurry", "warning", "Little fine detail (variance of the Laplacian "
                  "on a 512 px copy).", "Upload a sharper photo if you have one.",
                  ("quality.blur_laplacian_var",)),
        CheckSpec("quality.low_information", "warning", "Nearly uniform image (low histogram "
                  "entropy).", "Check that the upload is the intended photo.",
                  ("quality.low_information_entropy",)),
    )

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        facts = _usable(record, ctx)
        if facts is None:
            return
        q = ctx.cfg.quality
        where = {"record": record.key, "file": record.image}
        if facts.mean < q.dark_mean:
            yield Finding("quality.dark", f"mean luminance {facts.mean:.2f} < {q.dark_mean}",
                          **where)
        if facts.overexposed > q.overexposed_fraction:
            yield Finding("quality.overexposed", f"{facts.overexposed:.0%} of pixels are white",
                          **where)
        if facts.entropy < q.low_information_entropy:
            yield Finding("quality.low_information", f"histogram entropy {facts.entropy:.2f} "
                          f"bits < {q.low_information_entropy}", **where)
        elif facts.laplacian_var < q.blur_laplacian_var:
            yield Finding("quality.blurry", f"Laplacian variance {facts.laplacian_var:.1f} < "
                          f"{q.blur_laplacian_var}", **where)
