"""finetune/estimate.py: the formula checked by hand on a toy architecture, the parameter counts
on the tiny preset against the built models, and docs/gpu.md against what the script prints."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from finetune import estimate as est  # noqa: E402
from finetune.config import ScoftConfig  # noqa: E402

TOY = est.Architecture("toy", unet_params=1000, vae_params=100, text_params=200, lora_per_rank=10,
                       unet_features=2.0, vae_features=1.0, vae_factor=2, random_weights=True)


def test_formula_by_hand_on_a_toy_architecture():
    cfg = ScoftConfig(variant="lora", rank=4, resolution=8, train_batch_size=2, gradient_accumulation_steps=4)
    m = est.memory(TOY, cfg, "bf16")
    assert m.weights == (1000 + 200) * 2 + 100 * 2  # bf16: 2 bytes each, the VAE too
    assert m.lora == 4 * 10 * 16  # rank x sum(in + out), fp32 + gradient + two AdamW moments
    # (8 / 2)^2 = 16 latent positions x 2 feature elements x 168 kept, 2 bytes, batch 2
    assert m.activations == 16 * 2 * 168 * 2 * 2
    assert m.peak == m.weights + m.lora + m.activations + 1e9
    # fp16 keeps the VAE in fp32; MPC adds the decode (64 px^2 x 1 x 19) and fp32 backbones at 8/512 scale
    mpc = est.memory(TOY, replace(cfg, variant="MPC"), "fp16")
    assert mpc.weights == 1200 * 2 + 100 * 4
    assert mpc.activations == pytest.approx(((16 * 2 * 168 + 64 * 19) * 2 + 825e6 * (8 / 512) ** 2 * 4) * 2)
    # a UNet forward: 2 x 1000 x 16 / 8 = 4000 FLOPs per image; lora: 3 forwards x batch 2 x 4 micro-batches
    assert est.step_flops(TOY, cfg) == 4000 * 2 * 3 * 4
    assert est.training_seconds(TOY, cfg, 10, 96000) == 10


def test_tiny_preset_counts_match_the_built_models():
    from peft import LoraConfig

    from finetune.components import base_ref, load_components

    arch = est.read_architecture("tiny")
    assert arch.random_weights
    parts = load_components(base_ref("tiny"))
    assert arch.unet_params == sum(p.numel() for p in parts.unet.parameters())
    assert arch.vae_params == sum(p.numel() for p in parts.vae.parameters())
    assert arch.text_params == sum(p.numel() for p in parts.text_encoder.parameters())
    parts.unet.requires_grad_(False)
    parts.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    assert arch.lora_params(4) == sum(p.numel() for p in parts.unet.parameters() if p.requires_grad)


def test_docs_gpu_table_is_what_the_script_prints(capsys):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    est.main(["--table"])
    printed = capsys.readouterr().out.strip()
    page = (Path(__file__).resolve().parents[1] / "docs" / "gpu.md").read_text(encoding="utf-8")
    shown = re.search(r"<!-- estimate-table:start -->\n(.*?)\n<!-- estimate-table:end -->", page, re.S)
    assert shown, "docs/gpu.md lost its table markers"
    assert shown.group(1).strip() == printed, "docs/gpu.md is stale: paste `python -m finetune.estimate --table`"
    assert "estimates, not measurements" in page.lower()
