"""Croissant 1.0 JSON-LD (with the RAI vocabulary) for the clean dataset.

`render_croissant(meta, stats)` describes `<out>/clean` as it is on disk; the document is
meant to be written to `<out>/clean/croissant.json`, so every `contentUrl` and `includes`
pattern is relative to that folder. Per culture and split it declares:

- a `cr:FileObject` for `<culture>/<split>/metadata.jsonl` (with its sha256, which
  mlcroissant checks when it reads the file),
- a `cr:FileSet` for `<culture>/<split>/images/*.{jpg,jpeg,png,webp}`,
- a RecordSet `<culture>-<split>-images` (one record per image file: `file_name`, the path
  relative to the split folder as metadata.jsonl writes it, and `image`, the content), and
- a RecordSet `<culture>-<split>` (one record per metadata row: a field for every column of
  the file, typed by what it holds, and `image`, joined from the image RecordSet by
  `file_name`).

Steward text goes in as data only (the JSON encoder escapes it); `dumps` additionally
escapes `<`, `>` and `&` so the document can be embedded in an HTML `<script>` element.
Empty values are omitted, never written as "". A card missing required fields (see
`facts.missing_fields`) is still rendered, with the gap named in its description.
"""

from __future__ import annotations

import datetime as _dt
import glob
import json
import re
from pathlib import Path
from typing import Any

from ccub.files import atomic_write_text
from data_cards.facts import (
    CARRIED,
    COLUMN_DOCS,
    CardMeta,
    DatasetStats,
    effective_license,
    missing_fields,
)

CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
CARD_FILE = "croissant.json"
INCOMPLETE = "ccub:incomplete"

# The standard Croissant 1.0 context (as mlcroissant writes it), with the RAI namespace.
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

# mlcroissant reads "application/jsonlines" (its EncodingFormat.JSON_LINES) with pandas.
JSON_LINES = "application/jsonlines"
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")
# mlcroissant decodes a FileSet's files with Pillow when the first format it knows is
# image/jpeg or image/png (it has no image/webp); Pillow opens all three whatever the suffix.
IMAGE_FORMATS = ["image/jpeg", "image/png", "image/webp"]

# Field types by column kind (facts.column_kind). mlcroissant reads metadata.jsonl with pandas,
# which turns date-like columns (created_at) into timestamps: a text field refuses those, while a
# date-time field reads a timestamp and an ISO string alike.
KIND_TYPES = {"text": "sc:Text", "list": "sc:Text", "datetime": "sc:DateTime"}

ORGANISATION_WORDS = re.compile(
    r"\b(university|institute|institut|laboratory|lab|labs|inc|ltd|llc|gmbh|foundation|"
    r"association|society|collective|consortium|team|project|group|centre|center|"
    r"school|college|museum|library|ngo|community|council|ministry)\b", re.IGNORECASE)

DATA_COLLECTION_TYPES = ["User-generated content data", "Manual Human Curator"]


# ----------------------------------------------------------------------------- helpers


def _clean(value: Any) -> Any:
    """Drop empty strings, lists and dicts (recursively); Croissant wants absent, not ""."""
    if isinstance(value, dict):
        out = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ("", None, [], {})}
    if isinstance(value, list):
        out = [_clean(v) for v in value]
        return [v for v in out if v not in ("", None, [], {})]
    if isinstance(value, str):
        return value.strip()
    return value


def license_url(license_id: str) -> str:
    """SPDX id -> its SPDX page; URLs pass through; anything else stays text."""
    value = license_id.strip()
    if re.match(r"^https?://", value):
        return value
    if re.fullmatch(r"[A-Za-z0-9.+-]+", value):
        return f"https://spdx.org/licenses/{value}.html"
    return value  # an SPDX expression ("A OR B") or free text: kept as written


def _iso_date(value: str) -> str:
    """The ISO date (or date-time) in `value`, or "" when it is not one."""
    value = (value or "").strip()
    if not value:
        return ""
    for parse in (_dt.date.fromisoformat, _dt.datetime.fromisoformat):
        try:
            parse(value[:-1] + "+00:00" if value.endswith("Z") else value)  # "Z": Python < 3.11
            return value
        except ValueError:
            continue
    return ""


def _agent(name: str) -> dict[str, str]:
    kind = "sc:Organization" if ORGANISATION_WORDS.search(name) else "sc:Person"
    return {"@type": kind, "name": name}


def _slug(text: str) -> str:
    slug = re.sub(r"[^0-9A-Za-z_.-]+", "_", text).strip("_")
    return slug or "x"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _join(parts: list[str], sep: str = " ") -> str:
    return sep.join(p.strip() for p in parts if p and p.strip())


def _dist(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.items())


def _sparse_threshold(stats: DatasetStats) -> int:
    """The label.sparse_category threshold the run used (5 when not found)."""
    for check_id, _severity, thresholds in stats.checks:
        if check_id == "label.sparse_category":
            for value in thresholds.values():
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return 5


# ---------------------------------------------------------------- computed RAI facts


def thin_cells(stats: DatasetStats) -> list[tuple[str, str, int]]:
    """(culture, category, images) for culture x category cells under the sparse threshold."""
    limit = _sparse_threshold(stats)
    return [(culture, category, n) for culture, cells in stats.by_culture_category.items()
            for category, n in cells.items() if n < limit]


def _preprocessing(stats: DatasetStats) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in stats.tool_versions.items())
    lines = [
        f"Validated and exported with ccub ({versions}); effective configuration sha256 "
        f"{stats.config_sha256}." if stats.config_sha256 else f"Validated with ccub ({versions}).",
        f"{_count(stats.records_in, 'record')} submitted, {stats.total} exported"
        + (f"; not exported: {_dist(stats.not_exported)}" if stats.not_exported else "") + ".",
    ]
    if stats.removed_by_check:
        lines.append("Records not exported, by blocking check (a record may count under "
                     f"several): {_dist(stats.removed_by_check)}.")
    for check_id, severity, thresholds in stats.checks:
        shown = ", ".join(f"{k} = {json.dumps(v)}" for k, v in thresholds.items() if v is not None)
        lines.append(f"Check {check_id} (severity {severity})" + (f": {shown}" if shown else "")
                     + ".")
    if stats.disabled_checks:
        lines.append(f"Disabled checks: {', '.join(stats.disabled_checks)}.")
    if stats.exports:
        lines.append(f"Image export: {_dist(stats.exports)}. Exported images have EXIF "
                     "orientation applied and sRGB RGB pixels; re-encoded images are JPEG "
                     "quality 95 (4:4:4) or lossless PNG/WebP.")
    return lines


def _personal(meta: CardMeta, stats: DatasetStats) -> list[str]:
    stripped = {k: v for k, v in stats.privacy_stripped.items() if v}
    lines = [
        f"Embedded metadata (EXIF including GPS, XMP, IPTC, ICC profiles, comments, "
        f"thumbnails) was removed from all {stats.total} exported images and each file was "
        "re-opened to confirm none is left.",
        "Metadata found in exported images before removal: "
        + (", ".join(f"{k.replace('_', ' ')} in {_count(v, 'image')}" for k, v in stripped.items())
           if stripped else "no GPS location, device serial or owner name") + ".",
        "Each row carries the contributor's consent statement (column consent), the creator "
        "name as attribution (column creator) and the submitter id (column contributor).",
        "ccub does not detect faces or other identifying content in the pixels or captions; "
        "images may show identifiable people.",
    ]
    if meta.consent_wording:
        lines.insert(2, f"Consent asked of contributors: {meta.consent_wording}")
    return lines


def _biases(meta: CardMeta, stats: DatasetStats) -> list[str]:
    lines = [meta.biases]
    if stats.by_culture_category:
        lines.append("Images per culture and category: " + "; ".join(
            f"{culture}: {_dist(cells)}" for culture, cells in stats.by_culture_category.items())
            + ".")
    if stats.contributors and stats.total:
        top_name, top_n = stats.contributors[0]
        lines.append(f"{_count(stats.contributors_total, 'contributor')}; the largest share "
                     f"({top_name}) is {top_n} of {stats.total} images "
                     f"({100 * top_n / stats.total:.0f}%).")
    if stats.by_language:
        lines.append(f"Caption languages: {_dist(stats.by_language)} (und: not stated).")
    return lines


def _limitations(meta: CardMeta, stats: DatasetStats) -> list[str]:
    lines = [meta.known_gaps]
    thin = thin_cells(stats)
    if thin:
        lines.append(f"Culture x category cells with fewer than {_sparse_threshold(stats)} "
                     "images (too thin to train or evaluate on alone): "
                     + ", ".join(f"{c}/{k} ({n})" for c, k, n in thin) + ".")
    if stats.caption_words.count:
        w = stats.caption_words
        lines.append(f"Caption length in words: min {w.min}, median {w.median}, "
                     f"max {w.max}.")
    if not stats.single_license and len(stats.by_license) > 1:
        lines.append(f"Licences differ between images ({_dist(stats.by_license)}); "
                     "each row's license column applies to its image.")
    return lines


# -------------------------------------------------------------- distribution / records


def _file_id(culture: str, split: str, what: str) -> str:
    return f"{_slug(culture)}-{_slug(split)}-{what}"


def _distribution(stats: DatasetStats) -> list[dict[str, Any]]:
    digests = {path: (sha, size) for path, sha, size in stats.metadata_files}
    nodes: list[dict[str, Any]] = []
    for culture, splits in sorted(stats.data_files.items()):
        for split, path in sorted(splits.items()):
            sha, size = digests.get(path, ("", None))
            nodes.append({
                "@type": "cr:FileObject",
                "@id": _file_id(culture, split, "metadata"),
                "name": path,
                "description": f"Rows (one per image) of the {culture} {split} split.",
                "contentUrl": path,
                "contentSize": f"{size} B" if size is not None else "",
                "encodingFormat": JSON_LINES,
                "sha256": sha,
            })
            folder = glob.escape(path.rsplit("/", 1)[0])
            nodes.append({
                "@type": "cr:FileSet",
                "@id": _file_id(culture, split, "image-files"),
                "name": f"{culture}/{split}/images",
                "description": f"Images of the {culture} {split} split, metadata removed.",
                "encodingFormat": IMAGE_FORMATS,
                "includes": [f"{folder}/images/*.{suffix}" for suffix in IMAGE_SUFFIXES],
            })
    return nodes


def _field(record_set: str, name: str, data_type: str, description: str,
           source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"@type": "cr:Field", "@id": f"{record_set}/{name}", "name": name,
            "description": description, "dataType": data_type, "source": source, **extra}


def _column_fields(record_set: str, metadata: dict[str, str],
                   columns: dict[str, str]) -> list[dict[str, Any]]:
    """A field for every column of the metadata file but file_name (the join key).

    Column names are the contributors' own: the field's name is a slug of it, unique in the
    record set, and the column is read by its exact name."""
    taken = {"file_name", "image"}
    fields = []
    for column, kind in columns.items():
        if column == "file_name":
            continue
        name = base = _slug(column)
        suffix = 2
        while name in taken:
            name, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(name)
        fields.append(_field(record_set, name, KIND_TYPES[kind], COLUMN_DOCS.get(column, CARRIED),
                             {"fileObject": metadata, "extract": {"column": column}},
                             **({"repeated": True} if kind == "list" else {})))
    return fields


def _record_sets(stats: DatasetStats) -> list[dict[str, Any]]:
    sets: list[dict[str, Any]] = []
    for culture, splits in sorted(stats.data_files.items()):
        for split, path in sorted(splits.items()):
            images = _file_id(culture, split, "images")
            rows = f"{_slug(culture)}-{_slug(split)}"
            metadata = {"@id": _file_id(culture, split, "metadata")}
            file_set = {"@id": _file_id(culture, split, "image-files")}
            prefix = re.escape(path.rsplit("/", 1)[0])
            sets.append({
                "@type": "cr:RecordSet",
                "@id": images,
                "name": images,
                "description": f"The image files of {culture}/{split}, by file name.",
                "key": {"@id": f"{images}/file_name"},
                "field": [
                    _field(images, "file_name", "sc:Text",
                           "Path relative to the split folder, as in metadata.jsonl.",
                           {"fileSet": file_set, "extract": {"fileProperty": "fullpath"},
                            "transform": {"regex": f"^{prefix}/(images/[^/]+)$"}}),
                    _field(images, "image", "sc:ImageObject", "The image.",
                           {"fileSet": file_set, "extract": {"fileProperty": "content"}}),
                ],
            })
            fields = [
                _field(rows, "file_name", "sc:Text",
                       "The image's path relative to the split folder.",
                       {"fileObject": metadata, "extract": {"column": "file_name"}},
                       references={"field": {"@id": f"{images}/file_name"}}),
                _field(rows, "image", "sc:ImageObject", "The image the row describes.",
                       {"field": {"@id": f"{images}/image"}}),
            ]
            fields += _column_fields(rows, metadata, stats.file_columns.get(path, {}))
            sets.append({
                "@type": "cr:RecordSet",
                "@id": rows,
                "name": rows,
                "description": f"Image-caption records of culture {culture}, split {split} "
                               f"({path}).",
                "field": fields,
            })
    return sets


# -------------------------------------------------------------------------- document


def render_croissant(meta: CardMeta, stats: DatasetStats, *,
                     timeframe: tuple[str, str] | None = None) -> dict[str, Any]:
    """The Croissant 1.0 + RAI JSON-LD document for `stats` (written to clean/croissant.json).

    `timeframe` is (first, last) `created_at` of the records (see `collection_timeframe`);
    without it the collection timeframe is the publication date.
    """
    missing = missing_fields(meta, stats)
    published = _iso_date(meta.publication_date)
    if meta.publication_date and not published and "publication_date" not in missing:
        missing.append("publication_date (not an ISO date)")
    licence = effective_license(meta, stats)
    cultures = ", ".join(stats.cultures) or "no cultures"
    description = meta.description or (
        f"Community-contributed images with captions, curated with ccub: {stats.total} "
        f"images across {len(stats.cultures)} culture(s) ({cultures}).")
    if missing:
        description += (f"\n\n[{INCOMPLETE}] This card is incomplete; missing required "
                        f"field(s): {', '.join(missing)}.")

    languages = [code for code in stats.by_language if code and code != "und"]
    if timeframe and all(_iso_date(t) for t in timeframe):
        collected = list(dict.fromkeys(timeframe))
    else:
        collected = [published] if published else []

    contributors = _join([
        f"{stats.total} images with captions from {_count(stats.contributors_total, 'contributor')}"
        f", submitted for {cultures}.",
        f"Recruitment: {meta.recruitment}" if meta.recruitment else "",
        f"Compensation: {meta.compensation}" if meta.compensation else "",
        f"Consent: {meta.consent_wording}" if meta.consent_wording else "",
        f"Withdrawal: {meta.withdrawal}" if meta.withdrawal else "",
    ])
    annotation = [
        meta.caption_authors,
        "Each image has one caption (column text) written by its contributor; ccub does not "
        "rewrite captions."
        + (f" Caption sources: {_dist(stats.by_caption_source)}." if stats.by_caption_source
           else ""),
    ]
    if stats.blip_text_rows:
        annotation.append(f"Column blip_text holds generic captions (SCoFT) for "
                          f"{_count(stats.blip_text_rows, 'image')}, machine-made or derived from "
                          "the caption (column blip_source says how); ccub does not review them.")
    if stats.negative_rows:
        annotation.append(f"Column negative_imgpath lists SCoFT negative images for "
                          f"{_count(stats.negative_rows, 'image')} "
                          f"({_count(stats.negative_files, 'file')} in all).")
    maintenance = _join([
        meta.maintenance,
        f"Withdrawal: {meta.withdrawal}" if meta.withdrawal else "",
        f"Curators: {', '.join(meta.curators)}." if meta.curators else "",
        f"Contact: {meta.contact}" if meta.contact else "",
    ])
    use_cases = [meta.intended_uses,
                 f"Out of scope: {meta.out_of_scope_uses}" if meta.out_of_scope_uses else ""]

    document: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": meta.name,
        "alternateName": meta.pretty_name,
        "description": description,
        "license": license_url(licence) if licence else "",
        "url": meta.homepage,
        "version": meta.version,
        "datePublished": published,
        "sdDatePublished": stats.generated,
        "citeAs": meta.citation,
        "creator": [_agent(name) for name in meta.creators],
        "keywords": list(dict.fromkeys([*meta.tags, *stats.cultures])),
        "inLanguage": languages,
        "rai:dataCollection": contributors,
        "rai:dataCollectionType": DATA_COLLECTION_TYPES,
        "rai:dataCollectionTimeframe": collected,
        "rai:dataAnnotationProtocol": annotation,
        "rai:annotationsPerItem": "1 community caption per image"
                                  + (" (plus a machine caption in blip_text)"
                                     if stats.blip_text_rows else ""),
        "rai:dataPreprocessingProtocol": _preprocessing(stats),
        "rai:personalSensitiveInformation": _personal(meta, stats),
        "rai:dataBiases": _biases(meta, stats),
        "rai:dataLimitations": _limitations(meta, stats),
        "rai:dataUseCases": use_cases,
        "rai:dataReleaseMaintenancePlan": maintenance,
        "distribution": _distribution(stats),
        "recordSet": _record_sets(stats),
    }
    return _clean(document)


def collection_timeframe(clean_dir: Path, stats: DatasetStats) -> tuple[str, str] | None:
    """(earliest, latest) ISO `created_at` over the clean metadata files, or None."""
    dates: list[str] = []
    for rel, _sha, _size in stats.metadata_files:
        path = Path(clean_dir) / rel
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            value = row.get("created_at") if isinstance(row, dict) else None
            if isinstance(value, str) and _iso_date(value):
                dates.append(value.strip())
    if not dates:
        return None
    def moment(value: str) -> _dt.datetime:
        parsed = _dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        return parsed.astimezone(_dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed

    ordered = sorted(dates, key=moment)
    return ordered[0], ordered[-1]


def dumps(document: dict[str, Any]) -> str:
    """JSON text, safe to embed in HTML (<, > and & escaped as \\u003c etc.)."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_croissant(meta: CardMeta, stats: DatasetStats, clean_dir: Path) -> Path:
    """Render and write `clean_dir/croissant.json`; returns its path."""
    clean_dir = Path(clean_dir)
    document = render_croissant(meta, stats, timeframe=collection_timeframe(clean_dir, stats))
    path = clean_dir / CARD_FILE
    atomic_write_text(path, dumps(document) + "\n")
    return path
