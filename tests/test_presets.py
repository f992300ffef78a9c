"""Tiny model presets are data files; `extends` merges a preset over another."""

from __future__ import annotations

from ccub.models import TINY_CLIP_PRESETS, load_presets
from finetune.tiny import TINY_PRESETS


def test_the_packaged_presets_load_and_tiny_v_differs_from_tiny_in_its_prediction_and_family_only():
    assert sorted(TINY_PRESETS) == ["tiny", "tiny-v"] and list(TINY_CLIP_PRESETS) == ["tiny"]
    tiny, tiny_v = TINY_PRESETS["tiny"], TINY_PRESETS["tiny-v"]
    assert tiny["scheduler"]["prediction_type"] == "epsilon"
    assert tiny_v["scheduler"]["prediction_type"] == "v_prediction"
    assert (tiny["family"], tiny_v["family"]) == ("sd_v1", "sd_v2")
    assert {**tiny_v, "scheduler": tiny["scheduler"], "family": "sd_v1"} == tiny
    assert TINY_CLIP_PRESETS["tiny"]["vision_cfg"]["width"] == 32


def test_extends_merges_tables_key_by_key(tmp_path, monkeypatch):
    folder = tmp_path / "fake_presets" / "models"
    folder.mkdir(parents=True)
    (tmp_path / "fake_presets" / "__init__.py").write_text("")
    (folder / "base.toml").write_text("size = 1\n[a]\nx = 1\ny = [1, 2]\n[a.deep]\nz = 1\nw = 2\n")
    (folder / "child.toml").write_text('extends = "base"\n[a]\ny = [3]\n[a.deep]\nz = 5\n')
    (folder / "grandchild.toml").write_text('extends = "child"\nsize = 2\n')
    (folder / "notes.txt").write_text("not a preset")
    monkeypatch.syspath_prepend(str(tmp_path))
    presets = load_presets("fake_presets", "models")
    assert sorted(presets) == ["base", "child", "grandchild"]
    assert presets["child"] == {"size": 1, "a": {"x": 1, "y": [3], "deep": {"z": 5, "w": 2}}}
    assert presets["grandchild"] == {**presets["child"], "size": 2}
    assert presets["base"]["a"]["deep"] == {"z": 1, "w": 2}, "the base is not changed by its children"
