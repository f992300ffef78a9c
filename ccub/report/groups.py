"""Duplicate groups of report.json shaped for reading: members, relations in words, flags.

Shared by report.html and report.md, and bounded however large the groups are (a
random-weights CLIP can join everything into one group).
"""

from __future__ import annotations

from typing import Any

MAX_GROUPS = 300  # groups rendered, label conflicts and split leaks first
MAX_GROUP_CARDS = 12  # members per group shown side by side with a thumbnail
MAX_GROUP_LISTED = 100  # further members per group listed in a compact table
MAX_GROUP_EDGES = 40  # relations per group in its table, strongest first
MAX_GROUP_THUMBNAILS = 400  # thumbnails embedded across all groups
BAND = {"same_file": "duplicate", "same_pixels": "duplicate", "near": "duplicate",
        "near_review": "review", "semantic": "semantic"}
KIND_RANK = {kind: i for i, kind in enumerate(BAND)}
REMOVAL_CHECKS = ("duplicate.same_file", "duplicate.same_pixels", "duplicate.near")
ROLE_RANK = {"already accepted": 0, "kept": 1, "label conflict": 1, "dropped": 2}


def relation(edge: dict[str, Any]) -> str:
    """An edge of a duplicate group in words."""
    kind, value = edge["kind"], edge.get("value")
    if kind == "same_file":
        return "same bytes"
    if kind == "same_pixels":
        return "same pixels"
    if kind in ("near", "near_review") and value is not None:
        return f"pHash distance {int(value)}/256"
    if kind == "semantic" and value is not None:
        return f"CLIP cosine {float(value):.3f}"
    return str(kind)


def _edge_order(edge: dict[str, Any]) -> tuple:
    value = float(edge.get("value") or 0)
    return (KIND_RANK.get(edge["kind"], len(KIND_RANK)),
            -value if edge["kind"] == "semantic" else value)


def duplicate_groups(report: dict[str, Any], limit: int | None = None
                     ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(the first `limit` (None: all) duplicate groups, ready to render; counts over all).

    Each group: number, id, members (numbered; each with its record's outcome and the checks
    that block it other than its own removal as a duplicate), edges (the strongest relation of
    each pair, strongest first, at most MAX_GROUP_EDGES; with numbered ends, the relation in
    words and its band), flags (label conflict, category conflict, split leak) and the values
    behind them. Order: label conflicts, then split leaks, then category conflicts, then larger
    groups. The counts: total, omitted (beyond `limit`), label_conflict, split_leak,
    category_conflict.
    """
    records = {r["key"]: r for r in report.get("records", [])}
    issues = report.get("issues", [])
    prepared = []
    for group in report.get("duplicate_groups") or []:
        members = []
        for m in group.get("members", []):
            record = records.get(m.get("key"))
            blocking = sorted({issues[i]["check"] for i in record["issues"]
                               if i < len(issues) and issues[i]["severity"] in ("error", "review")}
                              ) if record else []
            if m.get("status") == "dropped":
                blocking = [c for c in blocking if c not in REMOVAL_CHECKS]
            outcome = record["status"] if record else None
            members.append({**m, "record": record, "outcome": outcome, "reasons": blocking,
                            "show_outcome": bool(record) and (
                                bool(blocking) or (m.get("status") == "kept"
                                                   and outcome != "accepted"))})
        members.sort(key=lambda m: (ROLE_RANK.get(m.get("status"), len(ROLE_RANK)),
                                    m.get("image") or "", m.get("key") or ""))
        cultures = sorted({m.get("culture") or "?" for m in members})
        categories = sorted({m["category"] for m in members if m.get("category")})
        splits = {m.get("split") for m in members}
        flags = {"label_conflict": len(cultures) > 1, "category_conflict": len(categories) > 1,
                 "split_leak": {"train", "test"} <= splits}
        prepared.append({"members": members, "edges": group.get("edges", []), "flags": flags,
                         "cultures": cultures, "categories": categories,
                         "splits": sorted(s for s in splits if s)})
    prepared.sort(key=lambda g: (not g["flags"]["label_conflict"], not g["flags"]["split_leak"],
                                 not g["flags"]["category_conflict"], -len(g["members"]),
                                 [m.get("image") or "" for m in g["members"][:1]]))
    shown = prepared if limit is None else prepared[:limit]
    counts = {"total": len(prepared), "omitted": len(prepared) - len(shown),
              **{flag: sum(g["flags"][flag] for g in prepared)
                 for flag in ("label_conflict", "split_leak", "category_conflict")}}
    for number, group in enumerate(shown, start=1):
        group["number"], group["id"] = number, f"group-{number}"
        index = {}
        for position, m in enumerate(group["members"], start=1):
            m["n"] = position
            index[m.get("key")] = m
        # One relation per pair, the strongest (identical files also match by pHash).
        edges, pairs = [], set()
        for edge in sorted(group["edges"], key=_edge_order):
            pair = frozenset((edge["a"], edge["b"]))
            if pair not in pairs:
                pairs.add(pair)
                edges.append(edge)
        group["edges_total"] = len(edges)
        group["edges"] = [{**e, "a_member": index.get(e["a"]), "b_member": index.get(e["b"]),
                           "relation": relation(e), "band": BAND.get(e["kind"], e["kind"])}
                          for e in edges[:MAX_GROUP_EDGES]]
        present = {BAND.get(e["kind"], e["kind"]) for e in edges}
        group["bands"] = [b for b in ("duplicate", "review", "semantic") if b in present] + \
            sorted(present - {"duplicate", "review", "semantic"})
    return shown, counts
