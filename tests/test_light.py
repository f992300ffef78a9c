"""Curation must run on a laptop without the model stack: `ccub validate` never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image


def test_validate_does_not_import_the_model_stack(tmp_path):
    folder = tmp_path / "sub" / "korea" / "FOOD"
    folder.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 255, (520, 600, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "FOOD_1.jpg", quality=90)
    (folder / "FOOD_1.txt").write_text("a plate of tteokbokki in spicy red sauce", "utf-8")
    script = textwrap.dedent(f"""
        import contextlib
        import sys
        from ccub.cli import app
        with contextlib.suppress(SystemExit):  # the exit code is not what this test checks
            app(["validate", {str(tmp_path / "sub")!r}, "--out", {str(tmp_path / "out")!r},
                 "--license", "CC0-1.0", "--workers", "1"], standalone_mode=False)
        heavy = sorted(m for m in ("torch", "diffusers", "transformers", "open_clip", "lpips")
                       if m in sys.modules)
        print("HEAVY=" + ",".join(heavy))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert "HEAVY=\n" in done.stdout or done.stdout.rstrip().endswith("HEAVY="), done.stdout + done.stderr
    assert (tmp_path / "out" / "clean" / "korea" / "train" / "metadata.jsonl").is_file()
