"""Rights: an allowed SPDX licence, attribution where it is required, consent for people."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from ccub.checks.registry import CheckFamily, CheckSpec, Context
from ccub.records import Finding, Record

CONSENT_YES = {"yes", "y", "true", "1", "given", "obtained", "signed", "model release"}
CONSENT_NO = {"no", "n", "false", "0", "refused", "withdrawn", "denied"}
CONSENT_NA = {"n/a", "na", "not applicable", "not_applicable", "no people", "none"}


def consent_state(value: str | None) -> str:
    """'yes', 'no', 'not_applicable' or 'unknown'."""
    text = (value or "").strip().lower()
    if text in CONSENT_YES:
        return "yes"
    if text in CONSENT_NO:
        return "no"
    if text in CONSENT_NA:
        return "not_applicable"
    return "unknown"


@dataclass
class Rights:
    allowed_licenses: list[str] = field(
        default_factory=lambda: [
            "CC0-1.0", "CC-PDDC", "PDDL-1.0",
            "CC-BY-2.0", "CC-BY-2.5", "CC-BY-3.0", "CC-BY-4.0",
            "CC-BY-SA-2.0", "CC-BY-SA-2.5", "CC-BY-SA-3.0", "CC-BY-SA-4.0",
        ]
    )
    # SPDX ids (or prefixes ending in '*') whose terms require naming the creator.
    attribution_required: list[str] = field(default_factory=lambda: ["CC-BY-*"])


class RightsChecks(CheckFamily):
    name = "rights"
    specs = (
        CheckSpec("rights.license_missing", "error", "No licence.",
                  "Add a license column or license = \"CC-BY-4.0\" in submission.toml."),
        CheckSpec("rights.license_invalid", "error", "The licence is not an SPDX identifier.",
                  "Use an SPDX id such as CC-BY-4.0 or CC0-1.0 (https://spdx.org/licenses/)."),
        CheckSpec("rights.license_not_allowed", "error", "The licence is valid SPDX but not in "
                  "the allowlist.", "Ask the contributor for an allowed licence, or add it to "
                  "[rights] allowed_licenses.", ("rights.allowed_licenses",)),
        CheckSpec("rights.license_normalised", "warning", "The licence id was written in a "
                  "non-canonical form and was normalised.", "Nothing to do."),
        CheckSpec("rights.attribution_missing", "error", "The licence requires attribution "
                  "but no creator is recorded.", "Add a creator column (name to credit).",
                  ("rights.attribution_required",)),
        CheckSpec("rights.consent_missing", "review", "People are likely identifiable (people "
                  "category or caption) and no consent is recorded.",
                  "Record consent = \"yes\" once the people shown agreed, or \"n/a\".",
                  ("captions.people_words",)),
        CheckSpec("rights.consent_refused", "error", "Consent is recorded as refused or "
                  "withdrawn.", "Remove the image."),
        CheckSpec("rights.consent_invalid", "error", "The consent value is none of yes, no "
                  "or n/a (or their usual spellings), so nobody can tell what was agreed.",
                  "Write consent as yes, no or n/a."),
    )

    @cached_property
    def _spdx(self):
        from license_expression import get_spdx_licensing

        return get_spdx_licensing()

    def canonical_license(self, value: str) -> tuple[str | None, str | None]:
        """(canonical SPDX expression, error message)."""
        text = value.strip()
        if "," in text or ";" in text:
            return None, "several licences in one field; give one SPDX id or an expression " \
                         "joined with OR / AND"
        # "CC BY 4.0" is how licences are usually written by people; SPDX ids use hyphens.
        if not re.search(r"\b(AND|OR|WITH)\b", text, re.IGNORECASE):
            text = re.sub(r"\s+", "-", text)
        try:
            result = self._spdx.validate(text)
        except Exception as exc:  # license_expression raises assorted errors on bad syntax
            return None, f"not a licence expression ({type(exc).__name__})"
        if result.errors:
            return None, "; ".join(result.errors)
        return result.normalized_expression, None

    def check_record(self, record: Record, ctx: Context) -> Iterable[Finding]:
        rights, where = ctx.cfg.rights, {"record": record.key, "file": record.image}
        if not record.license:
            yield Finding("rights.license_missing", "no licence given", field="license", **where)
        else:
            canonical, error = self.canonical_license(record.license)
            if canonical is None:
                yield Finding("rights.license_invalid", f"'{record.license}': {error}",
                              field="license", **where)
            else:
                if canonical != record.license:
                    yield Finding("rights.license_normalised", f"'{record.license}' -> "
                                  f"'{canonical}'", field="license", fixed=canonical, **where)
                if canonical not in rights.allowed_licenses:
                    yield Finding("rights.license_not_allowed", f"'{canonical}'",
                                  field="license", **where)
                elif any(fnmatch.fnmatchcase(canonical, p) for p in rights.attribution_required) \
                        and not record.creator:
                    yield Finding("rights.attribution_missing", f"{canonical} requires "
                                  "attribution", field="creator", **where)
        state = consent_state(record.consent)
        if state == "no":
            yield Finding("rights.consent_refused", f"consent is '{record.consent}'",
                          field="consent", **where)
        elif state == "unknown" and record.consent and record.consent.strip():
            yield Finding("rights.consent_invalid", f"consent is '{record.consent[:60]}'",
                          field="consent", **where)
        elif state == "unknown":
            reason = self._people(record, ctx)
            if reason:
                yield Finding("rights.consent_missing", reason, field="consent", **where)

    @staticmethod
    def _people(record: Record, ctx: Context) -> str | None:
        category = ctx.cfg.categories.get(record.category or "")
        if category is not None and category.people:
            return f"category {record.category} usually shows people"
        words = set(re.findall(r"[^\W\d_]+", (record.caption or "")[:2000].lower()))
        hits = sorted(words & set(ctx.cfg.captions.people_words))
        return f"caption mentions {', '.join(hits[:3])}" if hits else None
