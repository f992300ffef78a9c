"""SPDX licence ids to the Hugging Face hub's licence identifiers.

The hub reads `license:` in a dataset card's YAML header and accepts only its own ids
(https://huggingface.co/docs/hub/repositories-licenses); anything else must be
`license: other` with `license_name` (a lowercase slug) and `license_link`.

Decisions:
- A single SPDX id the hub knows maps to the hub id (`CC-BY-4.0` -> `cc-by-4.0`,
  `PDDL-1.0` -> `pddl`, `ODC-By-1.0` -> `odc-by`). Ids the hub lacks (CC-BY-SA-2.0,
  CC-BY-SA-2.5, CC-PDDC, ...) and SPDX expressions (`A OR B`, `A WITH B`) give `other`, with
  the slugged id as `license_name` and the SPDX page (of the first id) as `license_link`.
- A dataset whose records carry several licences (`hub_licenses`): when every one maps, the
  header gets the list of hub ids (DatasetCardData accepts a list); when any does not, the
  header says `other`, `license_name` joins all ids with `-and-`, and the link is the SPDX
  list. The card body always lists every licence with its record count and link.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SPDX_PAGE = "https://spdx.org/licenses/{}.html"
SPDX_LIST = "https://spdx.org/licenses/"

# Every licence id the hub offers (the "other" and "unknown" ids are handled separately).
HUB_IDS = frozenset(
    """
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m
bigscience-bloom-rail-1.0 bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause
bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0
cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0
cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0
etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc
lppl-1.3c ms-pl mpl-2.0 odc-by odbl osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl
""".split()  # noqa: SIM905
)

# SPDX ids whose hub id is not simply the lowercased SPDX id.
_SPECIAL = {
    "pddl-1.0": "pddl",
    "odc-by-1.0": "odc-by",
    "odbl-1.0": "odbl",
    "gpl-2.0-only": "gpl-2.0", "gpl-2.0-or-later": "gpl-2.0",
    "gpl-3.0-only": "gpl-3.0", "gpl-3.0-or-later": "gpl-3.0",
    "lgpl-2.1-only": "lgpl-2.1", "lgpl-2.1-or-later": "lgpl-2.1",
    "lgpl-3.0-only": "lgpl-3.0", "lgpl-3.0-or-later": "lgpl-3.0",
    "agpl-3.0-only": "agpl-3.0", "agpl-3.0-or-later": "agpl-3.0",
    "etalab-2.0": "etalab-2.0",
}
# Ids too broad or too specific to map from an SPDX id.
_NOT_FROM_SPDX = frozenset({"bsd", "cc", "gpl", "lgpl", "gfdl"})
_EXPRESSION = re.compile(r"\s(AND|OR|WITH)\s|[()]", re.IGNORECASE)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


def hub_id(spdx: str) -> str | None:
    """The hub id for one SPDX id, or None when the hub has no such licence."""
    key = spdx.strip().lower()
    if not key or _EXPRESSION.search(spdx):
        return None
    found = _SPECIAL.get(key, key)
    return found if found in HUB_IDS and found not in _NOT_FROM_SPDX else None


def spdx_link(spdx: str) -> str:
    first = re.split(r"[\s()]+", spdx.strip())
    ids = [t for t in first if t and t.upper() not in ("AND", "OR", "WITH")]
    return SPDX_PAGE.format(ids[0]) if ids else SPDX_LIST


def hub_license(spdx: str) -> tuple[str, str | None, str | None]:
    """(hub id, license_name, license_link); name and link only when the id is `other`."""
    found = hub_id(spdx)
    if found:
        return found, None, None
    if not spdx.strip():
        return "unknown", None, None
    return "other", _slug(spdx), spdx_link(spdx)


def hub_licenses(spdx_ids: Iterable[str]) -> tuple[str | list[str], str | None, str | None]:
    """The header licence for a dataset whose records carry these (distinct) licences."""
    ids = list(dict.fromkeys(i for i in spdx_ids if i and i.strip()))
    if not ids:
        return "unknown", None, None
    if len(ids) == 1:
        return hub_license(ids[0])
    mapped = [hub_id(i) for i in ids]
    if all(mapped):
        return list(dict.fromkeys(m for m in mapped if m)), None, None
    return "other", "-and-".join(_slug(i) for i in ids), SPDX_LIST
