"""File and format: rows and files that do not match, unsafe paths, undecodable images."""

from __future__ import annotations

from collections.abc import Iterable

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.imaging.analyze import EXTENSIONS, suffix_format
from ccub.records import Finding, Record


class FileChecks(CheckFamily):
    name = "file"
    specs = (
        CheckSpec("metadata.malformed", "error", "A metadata, manifest or submission.toml line "
                  "cannot be parsed (line number given; the rest of the file is still read).",
                  "Fix the line named in the message."),
        CheckSpec("metadata.encoding", "error", "A metadata line or caption file is not UTF-8.",
                  "Save the file as UTF-8."),
        CheckSpec("metadata.field_type", "error", "A metadata value has the wrong type (a "
                  "caption that is a number, a list or null; a licence that is an object); the "
                  "value is not used.", "Write the value as text in the column named."),
        CheckSpec("metadata.limit", "error", "A metadata line, cell or nested value, a caption "
                  "file or a whole metadata file is over a size limit; the row (or file) is "
                  "skipped and the rest is still read.", "Shorten the value, or split the file.",
                  ("limits.max_line_bytes", "limits.max_field_chars", "limits.max_json_depth",
                   "limits.max_metadata_mb", "limits.max_unpacked_mb")),
        CheckSpec("metadata.duplicate_row", "error", "The same file_name is listed twice; the "
                  "later row is skipped.", "Keep one row per image."),
        CheckSpec("file.missing", "error", "A row names an image that does not exist.",
                  "Add the image or fix the file_name."),
        CheckSpec("file.no_metadata", "error", "An image has no metadata row (no caption).",
                  "Add a row for it in metadata.jsonl, or remove the file."),
        CheckSpec("file.outside_root", "error", "A path is absolute, climbs out with '..', or is "
                  "a symlink pointing outside the submissions folder.",
                  "Use paths relative to the metadata file, inside the folder."),
        CheckSpec("file.not_regular", "error", "A FIFO, socket or device file (or a link to "
                  "one) stands where a file is expected; it is never opened.",
                  "Replace it with the real image or caption file."),
        CheckSpec("file.changed", "error", "The file was replaced (for example by a symlink) "
                  "or changed while the run read it; what was read is not trusted.",
                  "Do not change submissions during a run; run again."),
        CheckSpec("file.not_downloaded", "error", "A manifest row gives only a URL.",
                  "Download the image next to the manifest and give its path."),
        CheckSpec("file.unreadable", "error", "The file cannot be read (permissions, I/O).",
                  "Check the file's permissions."),
        CheckSpec("file.empty", "error", "The file is empty (0 bytes).",
                  "Upload the image again."),
        CheckSpec("file.tiny", "error", "The file is too small to be a real photo.",
                  "Upload the original image.", ("limits.min_file_bytes",)),
        CheckSpec("file.too_large", "error", "The file is over the size cap.",
                  "Export the photo as JPEG at normal quality.", ("limits.max_file_mb",)),
        CheckSpec("file.too_many_pixels", "error", "Width x height is over the pixel cap "
                  "(decompression-bomb guard; checked before decoding).",
                  "Resize the image.", ("limits.max_megapixels",)),
        CheckSpec("file.format", "error", "The bytes are not a JPEG, PNG or WebP image.",
                  "Convert it to JPEG or PNG (HEIC: set the phone to 'most compatible')."),
        CheckSpec("file.extension", "warning", "The extension does not match the real format; "
                  "the export uses the right one.", "Rename the file with its real extension."),
        CheckSpec("file.undecodable", "error", "The image cannot be opened.",
                  "Upload the original image again."),
        CheckSpec("file.truncated", "error", "Full decoding fails: the file is truncated or "
                  "corrupt (truncated images are never accepted).",
                  "Upload the complete file again."),
        CheckSpec("file.multi_frame", "error", "The image is an animation.",
                  "Export one frame as JPEG or PNG."),
        CheckSpec("negatives.invalid", "warning", "A negative_imgpath entry is missing, unsafe "
                  "or not a valid image; it is dropped.",
                  "Fix the path (relative to the dataset root) or regenerate the negative."),
    )

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        if record.image is None:
            return
        facts = ctx.facts.get(record.image)
        if facts is None:
            return
        if facts.error and facts.error.startswith("file."):
            yield Finding(facts.error, facts.error_detail, record=record.key, file=record.image)
            return
        if facts.byte_size < ctx.cfg.limits.min_file_bytes:
            yield Finding("file.tiny", f"{facts.byte_size} bytes", record=record.key,
                          file=record.image)
        declared = suffix_format(record.image)
        real = "JPEG" if facts.format == "MPO" else facts.format
        if declared and real and declared != real:
            yield Finding("file.extension", f"named like a {declared} but is a {real}",
                          record=record.key, file=record.image,
                          fixed=f"exported with extension {EXTENSIONS[real]}")
        kept = []
        for negative in record.negatives:
            neg = ctx.facts.get(negative)
            if neg is not None and neg.error:
                yield Finding("negatives.invalid", f"negative image '{negative}': "
                              f"{neg.error_detail or neg.error}; it was dropped",
                              record=record.key, field="negative_imgpath")
            else:
                kept.append(negative)
        record.negatives = kept
