"""A golden test of one whole SCoFT micro-batch.

Every term is computed here step by step from the method's formulas (the noising, the targets,
L_LDM, L_M, the guided DDPM sampler with its CFG formula and noise, the VAE decode with
1 / scaling factor, L_P, L_C over the real negatives, the weighted total) on a tiny UNet with a
LoRA, a tiny VAE and two stub distances, and compared with `scoft_losses`: the loss values and
the gradient of the total with respect to every LoRA parameter. Any drift of the step from the
formulas fails here.
"""

from __future__ import annotations

import contextlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel  # noqa: E402
from peft import LoraConfig  # noqa: E402

from finetune.config import ScoftConfig  # noqa: E402
from finetune.data import Batch  # noqa: E402
from finetune.step import Frozen, scoft_losses  # noqa: E402
from finetune.tiny import TINY_PRESETS  # noqa: E402

DTYPE = torch.float64  # so the comparison is about the formulas, not float32 rounding
PRESET = TINY_PRESETS["tiny"]
B, K, R = 2, 2, 32  # batch, negative slots, pixels


def d_perceptual(x, y, generator=None):
    """Stub L_P distance: per image, mean squared difference."""
    assert isinstance(generator, torch.Generator), "distances draw any randomness from the step's generator"
    return ((x - y) ** 2).flatten(1).mean(dim=1)


def d_contrast(x, y, generator=None):
    """Stub L_C distance, different from L_P's so a swap of the two shows."""
    assert isinstance(generator, torch.Generator), "distances draw any randomness from the step's generator"
    return (x - y).abs().flatten(1).mean(dim=1) + 0.5 * ((x - y) ** 2).flatten(1).mean(dim=1)


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**PRESET["unet"]).to(DTYPE)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # a LoRA that changes the output (B starts at zero otherwise)
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    vae = AutoencoderKL(**PRESET["vae"]).to(DTYPE).requires_grad_(False).eval()
    vae.register_to_config(scaling_factor=0.5)  # not 1, so multiplying for dividing shows
    return unet, vae


def make_batch(with_negatives: bool) -> Batch:
    g = torch.Generator().manual_seed(1)
    d = PRESET["unet"]["cross_attention_dim"]
    mask = torch.tensor([[True, True], [True, False]]) if with_negatives else torch.zeros(B, K, dtype=torch.bool)
    return Batch(indices=[0, 1], flips=[False, False],
                 latents=torch.randn(B, 4, R // 2, R // 2, generator=g, dtype=DTYPE),
                 pixels=torch.rand(B, 3, R, R, generator=g, dtype=DTYPE) * 2 - 1,
                 negatives=torch.rand(B, K, 3, R, R, generator=g, dtype=DTYPE) * 2 - 1,
                 negative_mask=mask,
                 text=torch.randn(B, 77, d, generator=g, dtype=DTYPE),
                 generic=torch.randn(B, 77, d, generator=g, dtype=DTYPE))


def scheduler(prediction_type: str) -> DDPMScheduler:
    return DDPMScheduler(**{**PRESET["scheduler"], "prediction_type": prediction_type})


def by_hand(unet, vae, sched, batch: Batch, empty, cfg: ScoftConfig, seed: int):
    """Every term of the micro-batch from the formulas, drawing the generator in the step's order."""
    g = torch.Generator().manual_seed(seed)
    a_bar = sched.alphas_cumprod.to(DTYPE)
    z0 = batch.latents
    eps = torch.randn(z0.shape, generator=g, dtype=torch.float32).to(DTYPE)
    t = torch.randint(cfg.min_timestep, cfg.max_timestep + 1, (B,), generator=g)
    a = a_bar[t].view(B, 1, 1, 1)
    z_t = a.sqrt() * z0 + (1 - a).sqrt() * eps
    v_pred = sched.config.prediction_type == "v_prediction"
    target = a.sqrt() * eps - (1 - a).sqrt() * z0 if v_pred else eps

    def unet_out(x, ts, text):
        return unet(x, ts, encoder_hidden_states=text).sample

    pred = unet_out(z_t, t, batch.text)
    terms = {"ldm": ((pred - target) ** 2).mean()}
    with torch.no_grad():
        generic = unet_out(z_t, t, batch.generic)
    terms["memorisation"] = ((pred - generic) ** 2).mean()
    torch.rand(B, generator=g, dtype=torch.float64)  # the draw of the recorded step (first: unused)

    # The sampler: t, t - s, ..., t - 18 s, 0 with s = t // 19, or [t, 0] when t < 19; per sample,
    # on slots 0..19 (a short schedule takes the first and the last slot).
    steps, w = cfg.sampler_steps, cfg.sampler_guidance
    uncond = empty.expand_as(batch.text)
    x = z_t
    slots = []
    for b in range(B):
        tb = int(t[b])
        if tb < steps - 1:
            slots.append({0: tb, steps - 1: 0})
        else:
            slots.append({i: tb - i * (tb // (steps - 1)) for i in range(steps - 1)} | {steps - 1: 0})
    for i in range(steps):
        if not any(i in plan for plan in slots):
            continue
        noise = torch.randn(x.shape, generator=g, dtype=torch.float32).to(DTYPE)
        rows = []
        for b, plan in enumerate(slots):
            if i not in plan:
                rows.append(x[b])
                continue
            xb, tb = x[b:b + 1], torch.tensor([plan[i]])
            if i == 0:
                cond = pred[b:b + 1]  # the training prediction, with its gradient
            else:
                with torch.no_grad():
                    cond = unet_out(xb, tb, batch.text[b:b + 1])
            with torch.no_grad():
                unc = unet_out(xb, tb, uncond[b:b + 1])
            out = unc + w * (cond - unc)  # classifier-free guidance
            later = [plan[j] for j in sorted(plan) if j > i]
            a_t = a_bar[plan[i]]
            a_p = a_bar[later[0]] if later else torch.tensor(1.0, dtype=DTYPE)
            x0 = (a_t.sqrt() * xb - (1 - a_t).sqrt() * out if v_pred
                  else (xb - (1 - a_t).sqrt() * out) / a_t.sqrt())
            beta = 1 - a_t / a_p
            mean = a_p.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_p) / (1 - a_t) * xb
            var = ((1 - a_p) / (1 - a_t) * beta).clamp(min=1e-20)
            rows.append((mean + var.sqrt() * noise[b:b + 1] if plan[i] > 0 else mean)[0])
        x = torch.stack(rows)
    image = vae.decode(x / vae.config.scaling_factor).sample
    terms["perceptual"] = d_perceptual(image, batch.pixels, g).mean()
    contrast = []
    for b in range(B):
        negatives = [d_contrast(image[b:b + 1], batch.negatives[b, k:k + 1], g)
                     for k in range(K) if batch.negative_mask[b, k]]
        negative = torch.stack(negatives).mean() if negatives else 0.0
        contrast.append(d_contrast(image[b:b + 1], batch.pixels[b:b + 1], g)[0] - negative)
    terms["contrastive"] = torch.stack(contrast).mean()
    total = 0.7 * terms["ldm"] + 0.3 * terms["memorisation"] + 0.05 * terms["contrastive"] \
        + 0.01 * terms["perceptual"]
    return total, terms


@contextlib.contextmanager
def recording(unet):
    """[(batch, timesteps, grad enabled)] of every UNet call made inside the block."""
    calls = []

    def hook(_module, args, kwargs):
        sample, timesteps = (list(args) + [kwargs.get("sample"), kwargs.get("timestep")])[:2]
        calls.append((sample.shape[0], timesteps.tolist(), torch.is_grad_enabled()))

    handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def lora_grads(unet, total) -> dict[str, torch.Tensor]:
    params = {n: p for n, p in unet.named_parameters() if "lora_" in n}
    for p in params.values():
        p.requires_grad_(True)
    grads = torch.autograd.grad(total, list(params.values()))
    return dict(zip(params, grads, strict=True))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("negatives", [True, False], ids=["negatives", "no-negatives"])
@pytest.mark.parametrize("t", [10, 500], ids=["t<19", "t>=19"])
def test_one_micro_batch_equals_the_formulas(parts, prediction_type, negatives, t):
    unet, vae = parts
    for p in (p for n, p in unet.named_parameters() if "lora_" in n):
        p.requires_grad_(True)
    sched = scheduler(prediction_type)
    cfg = ScoftConfig(variant="MPC", min_timestep=t, max_timestep=t + 3)
    batch = make_batch(negatives)
    empty = torch.randn(77, PRESET["unet"]["cross_attention_dim"], generator=torch.Generator().manual_seed(9),
                        dtype=DTYPE)
    frozen = Frozen(vae=vae, scheduler=sched, empty=empty, perceptual=d_perceptual, contrast=d_contrast)
    with recording(unet) as calls:
        total, terms = scoft_losses(unet, frozen, batch, cfg, 0, torch.Generator().manual_seed(3))
    # The sampler's first conditional prediction is the training one, not a second call with gradient.
    assert [grad for _, _, grad in calls].count(True) == 1
    expected_total, expected = by_hand(unet, vae, sched, batch, empty, cfg, seed=3)
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-6, abs=1e-9), name
    assert total.item() == pytest.approx(expected_total.item(), rel=1e-6)
    mine, theirs = lora_grads(unet, total), lora_grads(unet, expected_total)
    assert any(g.abs().sum() > 0 for g in theirs.values())
    for name, grad in theirs.items():
        assert torch.allclose(mine[name], grad, rtol=1e-6, atol=1e-10), name


# --------------------------------------------------------------------------- options that could be ignored


def step(parts, cfg: ScoftConfig, prediction_type: str = "epsilon"):
    """(total, terms, LoRA gradients) of one micro-batch with negatives, seed 3."""
    unet, vae = parts
    for p in (p for n, p in unet.named_parameters() if "lora_" in n):
        p.requires_grad_(True)
    empty = torch.randn(77, PRESET["unet"]["cross_attention_dim"], generator=torch.Generator().manual_seed(9),
                        dtype=DTYPE)
    frozen = Frozen(vae=vae, scheduler=scheduler(prediction_type), empty=empty, perceptual=d_perceptual,
                    contrast=d_contrast)
    total, terms = scoft_losses(unet, frozen, make_batch(True), cfg, 0, torch.Generator().manual_seed(3))
    return total, terms, lora_grads(unet, total)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_snr_gamma_weights_each_sample_by_min_snr_over_snr(parts, prediction_type):
    # Variant M: no sampler needed; t where SNR > gamma, so every weight is below 1.
    plain = step(parts, ScoftConfig(variant="M", min_timestep=20, max_timestep=100), prediction_type)
    plain = plain[1]["ldm"].item()
    weighted = step(parts, ScoftConfig(variant="M", min_timestep=20, max_timestep=100, snr_gamma=0.5),
                    prediction_type)[1]["ldm"].item()
    # The same draw: recompute each sample's squared error and weight by hand.
    g = torch.Generator().manual_seed(3)
    unet, _ = parts
    batch, sched = make_batch(True), scheduler(prediction_type)
    eps = torch.randn(batch.latents.shape, generator=g, dtype=torch.float32).to(DTYPE)
    t = torch.randint(20, 101, (B,), generator=g)
    a = sched.alphas_cumprod.to(DTYPE)[t]
    z_t = a.sqrt().view(B, 1, 1, 1) * batch.latents + (1 - a).sqrt().view(B, 1, 1, 1) * eps
    v_pred = prediction_type == "v_prediction"
    target = (a.sqrt().view(B, 1, 1, 1) * eps - (1 - a).sqrt().view(B, 1, 1, 1) * batch.latents) if v_pred else eps
    with torch.no_grad():
        errors = ((unet(z_t, t, encoder_hidden_states=batch.text).sample - target) ** 2).flatten(1).mean(dim=1)
    snr = a / (1 - a)
    # Min-SNR-gamma: min(SNR, gamma) / SNR against eps, / (SNR + 1) against v.
    weight = torch.clamp(snr, max=0.5) / (snr + 1 if v_pred else snr)
    assert plain == pytest.approx(errors.mean().item(), rel=1e-6)
    assert weighted == pytest.approx((errors * weight).mean().item(), rel=1e-6)
    assert weighted < plain


def test_gradient_checkpointing_changes_neither_losses_nor_gradients(parts, monkeypatch):
    unet, vae = parts
    cfg = ScoftConfig(min_timestep=500, max_timestep=503, sampler_steps=4)
    total, _, grads = step(parts, cfg)
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counted)
    unet.enable_gradient_checkpointing()
    vae.enable_gradient_checkpointing()
    unet.train()
    try:
        total_ckpt, _, grads_ckpt = step(parts, cfg)
    finally:
        unet.disable_gradient_checkpointing()
        vae.disable_gradient_checkpointing()
        unet.eval()
    assert calls, "checkpointing was not used"
    assert total_ckpt.item() == pytest.approx(total.item(), rel=1e-9)
    for name, grad in grads.items():
        assert torch.allclose(grads_ckpt[name], grad, rtol=1e-7, atol=1e-12), name


@pytest.mark.parametrize("t", [2, 500], ids=["t<steps-1", "t>=steps-1"])
def test_grad_step_moves_the_gradient_not_the_losses(parts, t):
    base = {"min_timestep": t, "max_timestep": t + 1, "sampler_steps": 6}
    first = step(parts, ScoftConfig(grad_step="first", **base))
    # With two steps taken, "random" may draw the first one: only "last" must move then.
    for mode in ("last", "random") if t > 5 else ("last",):
        other = step(parts, ScoftConfig(grad_step=mode, **base))
        assert other[0].item() == pytest.approx(first[0].item(), rel=1e-9), "the same forward values"
        moved = any(not torch.allclose(other[2][n], g) for n, g in first[2].items())
        assert moved, f"grad_step={mode} left the gradient where it was"


def test_use_8bit_adam_without_bitsandbytes_fails_clearly(monkeypatch):
    import builtins

    from finetune.train import TrainingError, _optimizer

    real_import = builtins.__import__

    def no_bitsandbytes(name, *args, **kwargs):
        if name == "bitsandbytes":
            raise ImportError("No module named 'bitsandbytes'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bitsandbytes)
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(TrainingError, match="pip install bitsandbytes"):
        _optimizer(ScoftConfig(use_8bit_adam=True), params)
    assert isinstance(_optimizer(ScoftConfig(), params), torch.optim.AdamW)


@pytest.mark.parametrize("spacing", ["reference", "even"])
def test_sampler_spacing_reaches_the_sampler(parts, spacing):
    unet, _ = parts
    with recording(unet) as calls:
        step(parts, ScoftConfig(min_timestep=37, max_timestep=37, sampler_spacing=spacing))
    # Calls: training, memorisation, the first step's unconditional branch, then both branches per step.
    visited = [calls[2][1][0]] + [timesteps[0] for _, timesteps, _ in calls[3:]]
    if spacing == "reference":
        assert visited == list(range(37, 18, -1)) + [0]  # 37 - i * (37 // 19), then 0
    else:
        assert visited == [int(37 * (19 - i) / 19 + 0.5) for i in range(20)]


def test_vae_decodes_in_its_own_precision_under_autocast(parts):
    # What a bf16 run hands the decoder: a bf16 latent from the UNet under autocast, a float32 VAE.
    # (Autocast leaves float64 alone, so this test builds its own float32 VAE.)
    import copy

    from finetune.step import decode_x0

    vae = copy.deepcopy(parts[1]).float()
    d = PRESET["unet"]["cross_attention_dim"]
    frozen = Frozen(vae=vae, scheduler=scheduler("epsilon"), empty=torch.zeros(77, d, dtype=torch.bfloat16))
    batch = make_batch(True)
    batch.text = batch.text.to(torch.bfloat16)
    z_t = batch.latents.to(torch.bfloat16)
    seen = []
    handle = vae.decoder.register_forward_hook(lambda _m, _a, out: seen.append(out.dtype))
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            image = decode_x0(lambda x, ts, text: torch.zeros_like(x), frozen, z_t, torch.tensor([500, 501]),
                              torch.zeros_like(z_t), batch, ScoftConfig(sampler_steps=2), torch.zeros(B),
                              torch.Generator().manual_seed(0), "epsilon")
    finally:
        handle.remove()
    assert seen == [torch.float32], "the decoder ran in the VAE's dtype, not autocast's bfloat16"
    assert image.dtype == torch.float32 and torch.isfinite(image).all()


def test_mp_keeps_the_positive_part_of_l_c_only(parts):
    """MP (the reference's --onlypositive): L_C is D(x0_hat, x+) whatever negatives the batch holds."""
    unet, vae = parts
    for p in (p for n, p in unet.named_parameters() if "lora_" in n):
        p.requires_grad_(True)
    sched = scheduler("epsilon")
    empty = torch.randn(77, PRESET["unet"]["cross_attention_dim"], generator=torch.Generator().manual_seed(9),
                        dtype=DTYPE)
    frozen = Frozen(vae=vae, scheduler=sched, empty=empty, perceptual=d_perceptual, contrast=d_contrast)
    cfg = ScoftConfig(variant="MP", min_timestep=500, max_timestep=503, sampler_steps=3)
    _, terms = scoft_losses(unet, frozen, make_batch(True), cfg, 0, torch.Generator().manual_seed(3))
    _, expected = by_hand(unet, vae, sched, make_batch(False), empty, cfg, seed=3)
    assert set(terms) == {"ldm", "memorisation", "perceptual", "contrastive"}
    assert terms["contrastive"].item() == pytest.approx(expected["contrastive"].item(), rel=1e-6)
