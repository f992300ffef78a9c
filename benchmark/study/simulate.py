"""Simulated participants: response files with a planted truth, to pilot the analysis before recruiting.

Each simulated participant ranks every item on every question by the Plackett-Luce model:
image m of item i has utility `strengths[m] + item_effects[(i, m)]`, and a ranking is the
images sorted by utility plus independent Gumbel noise (which is exactly Plackett-Luce, so
every pair of models follows Bradley-Terry with log-strength difference `u_a - u_b` when no
item effects are planted). The files are marked `"simulated": true`, and every analysis of
them says SIMULATED.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.study.responses import RESPONSE_FORMAT
from ccub.files import atomic_write_text

if TYPE_CHECKING:
    from benchmark.study.bundle import StudyKey


def simulate(study: StudyKey, participants: int, strengths: dict[str, float] | None = None,
             item_effects: dict[tuple[str, str], float] | None = None, seed: int = 0,
             identifies: str = "yes") -> list[dict]:
    """Response documents (the survey's JSON format) of `participants` simulated people."""
    models = study.model_names()
    strengths = strengths or {}
    unknown = sorted(set(strengths) - set(models))
    if unknown:
        raise ValueError(f"strengths name models not in the study: {unknown}; its models are {models}")
    effects = item_effects or {}
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    out = []
    for n in range(participants):
        answers = []
        for item in study.items:
            slot_of = {model: slot for slot, model in item["slots"].items()}
            utility = np.array([strengths.get(m, 0.0) + effects.get((item["id"], m), 0.0) for m in models])
            for question in study.questions:
                order = np.argsort(-(utility + rng.gumbel(size=len(models))))
                answers.append({"item": item["id"], "question": question,
                                "ranking": [slot_of[models[i]] for i in order]})
        out.append({"format": RESPONSE_FORMAT, "version": 1, "study_id": study.study_id,
                    "participant": f"sim-{seed}-{n:04d}", "consent": True,
                    "affiliation": {"identifies": identifies, "description": ""}, "started": now, "finished": now,
                    "items_shown": [item["id"] for item in study.items], "answers": answers, "simulated": True})
    return out


def write_responses(documents: list[dict], folder: Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in documents:
        path = folder / f"ccub-study-{doc['study_id']}-{doc['participant']}.json"
        atomic_write_text(path, json.dumps(doc, indent=1))
        paths.append(path)
    return paths
