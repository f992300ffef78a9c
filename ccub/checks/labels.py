"""Labels: culture and category in the vocabularies, consistent, and balanced."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.records import Finding, Record
from ccub.vocab import filename_prefix


@dataclass
class Labels:
    contributor_share_warning: float = 0.5
    min_records_per_category: int = 5


class LabelChecks(CheckFamily):
    name = "labels"
    specs = (
        CheckSpec("label.culture_missing", "error", "No culture: not in the row, a "
                  "submission.toml, a flag, or a path component.",
                  "Add a culture column, a submission.toml with culture = \"...\", or "
                  "--culture."),
        CheckSpec("label.culture_unknown", "error", "The culture is not in the vocabulary.",
                  "Use a known culture (`ccub checks --vocabulary`) or add it under "
                  "[cultures.<slug>] in ccub.toml."),
        CheckSpec("label.category_missing", "warning", "No category (the record is kept).",
                  "Add a category column or a CCUB prefix such as FOOD_ to the file name."),
        CheckSpec("label.category_unknown", "error", "The category is not in the vocabulary.",
                  "Use a CCUB code (ARCH, CITIES, CLOTH, FOOD, ...) or add it under "
                  "[categories.<CODE>] in ccub.toml."),
        CheckSpec("label.prefix_mismatch", "warning", "The file name's CCUB prefix (ARCH_, "
                  "FOOD_) disagrees with the category.", "Fix the category or rename the file."),
        CheckSpec("label.split_unknown", "error", "The split is not train, test or validation.",
                  "Use train, test or validation."),
        CheckSpec("label.sparse_category", "info", "A culture x category cell has few "
                  "records.", "Collect more images for this category.",
                  ("labels.min_records_per_category",)),
        CheckSpec("label.contributor_skew", "warning", "One contributor supplied most of a "
                  "culture's records.", "Invite more contributors so one viewpoint does not "
                  "dominate.", ("labels.contributor_share_warning",)),
    )

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        where = {"record": record.key, "file": record.image}
        if not record.culture:
            yield Finding("label.culture_missing", "no culture given", field="culture", **where)
        elif record.culture not in ctx.cfg.cultures:
            yield Finding("label.culture_unknown", f"'{record.culture}'", field="culture",
                          **where)
        if not record.category:
            yield Finding("label.category_missing", "no category given", field="category",
                          **where)
        elif record.category not in ctx.cfg.categories:
            yield Finding("label.category_unknown", f"'{record.category}'", field="category",
                          **where)
        else:
            prefix = filename_prefix(record.image or "")
            code = ctx.vocab.category(prefix) if prefix else None
            if code and code != record.category:
                yield Finding("label.prefix_mismatch", f"file name says {prefix}_, category is "
                              f"{record.category} ({record.sources.get('category', '?')})",
                              field="category", **where)
        if record.split not in ("train", "test", "validation"):
            yield Finding("label.split_unknown", f"'{record.split}'", field="split", **where)

    def check_dataset(self, records: list[Record], ctx: Context) -> Iterable[Finding]:
        labels = ctx.cfg.labels
        cells: Counter[tuple[str, str]] = Counter()
        contributors: dict[str, Counter[str]] = defaultdict(Counter)
        for r in records:
            if r.culture in ctx.cfg.cultures:
                contributors[r.culture][r.contributor or "(unknown)"] += 1
                if r.category in ctx.cfg.categories:
                    cells[(r.culture, r.category)] += 1
        for (culture, category), count in sorted(cells.items()):
            if count < labels.min_records_per_category:
                yield Finding("label.sparse_category", f"{culture} / {category}: {count} "
                              f"record(s) < {labels.min_records_per_category}")
        for culture, counts in sorted(contributors.items()):
            total = sum(counts.values())
            top, n = counts.most_common(1)[0]
            if len(counts) > 1 and n / total > labels.contributor_share_warning:
                yield Finding("label.contributor_skew", f"{culture}: contributor {top} supplied "
                              f"{n} of {total} records ({n / total:.0%})")
            elif len(counts) == 1 and total >= labels.min_records_per_category:
                yield Finding("label.contributor_skew", f"{culture}: all {total} records come "
                              f"from one contributor ({top})")
