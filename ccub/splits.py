"""`--test-fraction`: a test split per culture, stratified by category, that never separates
the members of a duplicate group (exact, near, review-band or semantic)."""

from __future__ import annotations

import random
from collections import defaultdict

from ccub.records import Record


def assign_test_split(records: list[Record], groups: list[list[str]], fraction: float,
                      seed: int) -> int:
    """Set each record's split to train or test in place; returns how many went to test.

    A group is a unit: it goes to one side whole and counts for the category of its first
    member. Per culture and category, units are shuffled with a seed of their own and taken
    while they fit into round(fraction x records of that category).
    """
    by_key = {r.key: r for r in records}
    grouped: set[str] = set()
    units: list[list[Record]] = []
    for group in groups:
        members = sorted((by_key[k] for k in group if k in by_key), key=lambda r: r.key)
        if members:
            units.append(members)
            grouped.update(r.key for r in members)
    units += [[r] for r in sorted(records, key=lambda r: r.key) if r.key not in grouped]
    cells: dict[tuple[str, str], list[list[Record]]] = defaultdict(list)
    for unit in units:
        cells[(unit[0].culture or "", unit[0].category or "")].append(unit)
    in_test = 0
    for (culture, category), cell in sorted(cells.items()):
        target = round(fraction * sum(len(u) for u in cell))
        random.Random(f"{seed}:{culture}:{category}").shuffle(cell)
        taken = 0
        for unit in cell:
            split = "test" if taken + len(unit) <= target and target else "train"
            taken += len(unit) if split == "test" else 0
            for record in unit:
                record.set("split", split, f"--test-fraction {fraction}")
        in_test += taken
    return in_test
