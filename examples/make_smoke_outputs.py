"""Rebuild examples/smoke/: a benchmark and a ranking-study analysis made by ccub's own commands
on tiny RANDOM-WEIGHT models, for docs/python.md and its test (a few kilobytes of CSV and JSON).

    python examples/make_smoke_outputs.py     # a few minutes on a laptop CPU; needs ccub[models]

Every step is the code the commands run: `ccub validate` of examples/submissions (Korea, with a
test split), `ccub prepare --base tiny`, `ccub finetune --base tiny` (variants M and MPC, two steps),
`ccub benchmark --clip tiny` (three prompts, two seeds), `ccub study make`, `ccub study simulate`
(simulated participants, not people) and `ccub study analyze`. The numbers mean nothing: every
file says so (`random_weights`, `smoke_run`, `simulated` are True). Only the tables are kept,
not the images: benchmark.json's image paths point into the temporary folder the script used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "smoke"
SUITE = """
[[prompt]]
culture = "korea"
category = "FOOD"
text = "A table of food in South Korea"
generic = "A table of food"

[[prompt]]
culture = "korea"
category = "CLOTH"
text = "People wearing traditional clothing, in South Korea"
generic = "People wearing traditional clothing"

[[prompt]]
culture = "korea"
category = "CITIES"
text = "Photo of a street, in South Korea"
generic = "Photo of a street"
"""
CONFIG = """
[benchmark]
steps = 3
clip = "tiny"
bootstrap = 500

[study]
bootstrap = 200
"""


def ccub(*args: str, cwd: Path, ok: tuple[int, ...] = (0,)) -> None:
    print("$ ccub", " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "ccub", *args], cwd=cwd)
    if done.returncode not in ok:
        sys.exit(f"ccub {args[0]} exited with {done.returncode}")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="ccub-smoke-") as tmp:
        top = Path(tmp)
        (top / "ccub.toml").write_text(CONFIG)
        (top / "suite.toml").write_text(SUITE)
        # Exit code 1: some example records are rejected on purpose.
        ccub("validate", str(HERE / "submissions"), "--out", "data", "--test-fraction", "0.3", "--workers", "1",
             cwd=top, ok=(0, 1))
        ccub("prepare", "--culture", "korea", "--data", "data", "--base", "tiny", "--device", "cpu", cwd=top)
        runs = []
        for variant in ("M", "MPC"):
            run = top / "runs" / f"korea-{variant}"
            ccub("finetune", "--culture", "korea", "--data", "data", "--base", "tiny", "--variant", variant,
                 "--steps", "2", "--output", str(run), cwd=top)
            runs.append(run)
        ccub("benchmark", "--model", str(runs[1]), "--compare", str(runs[0]), "--prompts", "suite.toml",
             "--seeds", "2", "--device", "cpu", cwd=top)
        ccub("study", "make", str(runs[1]), "--out", "study", "--items", "6", cwd=top)
        ccub("study", "simulate", "study", "--out", "responses", "--participants", "8", "--strength",
             "korea-MPC=1", cwd=top)
        ccub("study", "analyze", "study", "responses", cwd=top)

        if OUT.exists():
            shutil.rmtree(OUT)
        (OUT / "benchmark").mkdir(parents=True)
        for name in ("benchmark.json", "results.csv", "summary.csv"):
            shutil.copy(runs[1] / "benchmark" / name, OUT / "benchmark" / name)
        shutil.copytree(top / "study" / "analysis", OUT / "analysis",
                        ignore=shutil.ignore_patterns("*.html", "*.md"))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
