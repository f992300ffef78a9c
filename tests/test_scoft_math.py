"""SCoFT's loss terms and x0 sampler against hand computations on small tensors."""

from __future__ import annotations

import math
from fractions import Fraction
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusers import DDPMScheduler  # noqa: E402

from finetune import losses  # noqa: E402
from finetune.config import ScoftConfig  # noqa: E402
from finetune.sampler import ddpm_step, grad_steps, guided_x0, predicted_x0, schedule  # noqa: E402
from finetune.step import perceptual_due, weights  # noqa: E402


def sd_scheduler(prediction_type: str = "epsilon") -> DDPMScheduler:
    return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         prediction_type=prediction_type)


def l1_distance(x, y):
    """A distance whose values are easy to compute by hand."""
    return (x - y).abs().flatten(1).mean(dim=1)


# --------------------------------------------------------------------------- losses


def test_ldm_and_memorisation_losses_by_hand():
    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    # per sample: (1 + 4) / 2 = 2.5 and (1 + 9) / 2 = 5; mean 3.75
    assert losses.ldm_loss(pred, target).item() == pytest.approx(3.75)
    assert losses.ldm_loss(pred, target, torch.tensor([1.0, 0.2])).item() == pytest.approx((2.5 + 1.0) / 2)
    generic = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    pred = pred.clone().requires_grad_(True)
    value = losses.memorisation_loss(pred, generic)
    assert value.item() == pytest.approx((2.0 + 2.0) / 2)  # (0 + 4) / 2 and (0 + 4) / 2
    value.backward()
    assert generic.grad is None, "no gradient through the generic-caption prediction"
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_contrastive_loss_masks_missing_negatives():
    x0 = torch.zeros(3, 1, 1, 2)
    positives = torch.full((3, 1, 1, 2), 1.0)  # D(x0, x+) = 1 for every image
    negatives = torch.stack([
        torch.stack([torch.full((1, 1, 2), 2.0), torch.full((1, 1, 2), 4.0)]),  # two negatives: mean D = 3
        torch.stack([torch.full((1, 1, 2), 6.0), torch.full((1, 1, 2), 99.0)]),  # one real, one padding: D = 6
        torch.stack([torch.full((1, 1, 2), 50.0), torch.full((1, 1, 2), 50.0)]),  # none: padding only
    ])
    mask = torch.tensor([[True, True], [True, False], [False, False]])
    value = losses.contrastive_loss(l1_distance, x0, positives, negatives, mask)
    # (1 - 3) + (1 - 6) + (1 - 0: the positive part only, never a zero-distance negative) over 3
    assert value.item() == pytest.approx(((1 - 3) + (1 - 6) + 1) / 3)
    calls = []

    def counting(x, y):
        calls.append(x.shape[0])
        return l1_distance(x, y)

    losses.contrastive_loss(counting, x0, positives, negatives, mask)
    assert calls == [3, 3], "distances only for the three real negatives (and the three positives)"


def test_wide_widens_half_precision_only():
    assert losses.wide(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.float32
    assert losses.wide(torch.ones(2, dtype=torch.float16)).dtype == torch.float32
    assert losses.wide(torch.ones(2, dtype=torch.float64)).dtype == torch.float64
    assert losses.ldm_loss(torch.ones(2, 3, dtype=torch.bfloat16), torch.zeros(2, 3, dtype=torch.bfloat16),
                           torch.tensor([1.0, 0.5])).dtype == torch.float32


def test_perceptual_loss_and_min_snr_by_hand():
    x0, positives = torch.zeros(2, 1, 1, 1), torch.tensor([0.5, 1.5]).view(2, 1, 1, 1)
    assert losses.perceptual_loss(l1_distance, x0, positives).item() == pytest.approx(1.0)
    alphas = torch.tensor([0.5, 0.8, 0.9])
    t = torch.tensor([0, 1, 2])
    snr = alphas / (1 - alphas)  # 1, 4, 9
    w = losses.min_snr_weights(SimpleNamespace(alphas_cumprod=alphas), t, 5.0, "epsilon")
    assert torch.allclose(w, torch.minimum(snr, torch.tensor(5.0)) / snr)
    wv = losses.min_snr_weights(SimpleNamespace(alphas_cumprod=alphas), t, 5.0, "v_prediction")
    assert torch.allclose(wv, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))


def test_variant_weights_and_interval():
    cfg = ScoftConfig()
    assert weights(cfg) == {"ldm": 0.7, "memorisation": 0.3, "perceptual": 0.01, "contrastive": 0.05}
    # MP is the reference's --onlypositive run: the same weights, L_C without its negatives.
    assert weights(ScoftConfig(variant="MP")) == weights(cfg)
    assert cfg.uses_negatives() and not ScoftConfig(variant="MP").uses_negatives()
    assert weights(ScoftConfig(variant="M")) == {"ldm": 0.7, "memorisation": 0.3}
    assert weights(ScoftConfig(variant="lora")) == {"ldm": 1.0}
    assert [m for m in range(25) if perceptual_due(cfg, m)] == [0, 10, 20]
    assert not any(perceptual_due(ScoftConfig(variant="M"), m) for m in range(25))


# --------------------------------------------------------------------------- sampler


def test_schedule_is_the_reference_spacing_or_t_and_zero():
    plan = schedule(torch.tensor([999, 37, 19, 5, 18]), 20)
    # The reference code: t - i * (t // 19) for i < 19, then 0; [t, 0] when t < 19.
    assert plan.times[0].tolist() == [999 - i * 52 for i in range(19)] + [0]
    assert plan.times[1].tolist() == list(range(37, 18, -1)) + [0]  # 37 ... 19, then one jump to 0
    assert plan.times[2].tolist() == list(range(19, -1, -1))
    for row, t in ((3, 5), (4, 18)):
        assert plan.active[row].nonzero().flatten().tolist() == [0, 19]
        assert (plan.times[row, 0], plan.times[row, 19]) == (t, 0)
        assert plan.next_times[row, 0] == 0 and plan.next_times[row, 19] == -1
    assert plan.active[:3].all() and plan.next_times[0, 0] == plan.times[0, 1]
    for row in range(3):
        assert (plan.times[row, :-1] > plan.times[row, 1:]).all(), "strictly decreasing: no repeated timestep"


def test_even_spacing_is_the_option_for_evenly_spaced_steps():
    plan = schedule(torch.tensor([999, 37]), 20, "even")
    assert plan.times[0].tolist() == [round(999 * (19 - i) / 19 + 1e-9) for i in range(20)]
    assert plan.times[1].tolist() == [int(37 * (19 - i) / 19 + 0.5) for i in range(20)]
    assert (plan.times[1, :-1] > plan.times[1, 1:]).all()
    with pytest.raises(ValueError, match="spacing 'log': expected one of reference, even$"):
        schedule(torch.tensor([10]), 20, "log")


def test_the_sampler_needs_two_steps_at_least():
    from ccub.config import ConfigError
    from finetune.config import check

    with pytest.raises(ConfigError, match="sampler_steps = 1: must be at least 2"):
        check(ScoftConfig(sampler_steps=1))
    assert schedule(torch.tensor([5, 40]), 2).times.tolist() == [[5, 0], [40, 0]]


def exact_even_times(t: int, steps: int) -> list[int]:
    """floor(t (n - i) / n + 1/2) for n = steps - 1, in exact rational arithmetic."""
    n = steps - 1
    return [math.floor(Fraction(t * (n - i), n) + Fraction(1, 2)) for i in range(steps)]


def test_even_spacing_rounds_halves_up_exactly():
    # 9 * 5/6 = 7.5 exactly; in float32 5/6 rounds down and 9 * 5/6 lands below 7.5.
    plan = schedule(torch.tensor([9]), 7, "even")
    assert plan.times[0].tolist() == [9, 8, 6, 5, 3, 2, 0] == exact_even_times(9, 7)


@settings(max_examples=200, deadline=None)
@given(t=st.integers(0, 999), steps=st.integers(2, 60))
def test_even_spacing_is_exact_for_every_t_and_step_count(t, steps):
    plan = schedule(torch.tensor([t]), steps, "even")
    expected = exact_even_times(t, steps)
    if t < steps - 1:  # [t, 0]
        assert plan.active[0].nonzero().flatten().tolist() == [0, steps - 1]
        assert (plan.times[0, 0], plan.times[0, -1]) == (t, 0)
    else:
        assert plan.times[0].tolist() == expected
        assert plan.active[0].all()


def test_gradient_step_is_drawn_over_the_steps_a_sample_takes():
    plan = schedule(torch.tensor([600, 10, 5]), 20)  # 20, 2 and 2 steps taken
    draw = torch.tensor([0.99, 0.6, 0.3], dtype=torch.float64)
    assert grad_steps("first", plan, draw).tolist() == [0, 0, 0]
    assert grad_steps("last", plan, draw).tolist() == [19, 19, 19]
    # floor(u * steps taken)-th step taken: 19th of 20; 2nd of 2 (slot 19); 1st of 2 (slot 0).
    assert grad_steps("random", plan, draw).tolist() == [19, 19, 0]
    draws = torch.rand(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    short = grad_steps("random", schedule(torch.full((4000,), 10), 20), draws)
    assert set(short.tolist()) == {0, 19} and 0.45 < (short == 0).double().mean() < 0.55
    full = grad_steps("random", schedule(torch.full((4000,), 900), 20), draws)
    assert set(full.tolist()) == set(range(20))
    with pytest.raises(ValueError, match="grad_step 'middle': expected one of first, last, random$"):
        grad_steps("middle", plan, draw)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddpm_step_matches_diffusers(prediction_type):
    scheduler = sd_scheduler(prediction_type)
    timesteps = [700, 350, 0]
    scheduler.set_timesteps(timesteps=timesteps)
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    output = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    for t, prev in zip(timesteps, [*timesteps[1:], -1], strict=True):
        expected = scheduler.step(output, t, sample, generator=torch.Generator().manual_seed(2)).prev_sample
        # diffusers draws its variance noise with the generator it is given: draw the same noise.
        noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
        mine = ddpm_step(output, sample, torch.tensor([t]), torch.tensor([prev]), scheduler.alphas_cumprod, noise,
                         prediction_type)
        assert torch.allclose(mine, expected, atol=1e-5), (t, prev)


class RecordingUnet(torch.nn.Module):
    """A linear 'UNet' that records, for each call, whether autograd was recording it."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.5))
        self.calls: list[tuple[int, bool]] = []
        self.timesteps: list[list[int]] = []

    def forward(self, latents, t, text):
        self.calls.append((latents.shape[0], torch.is_grad_enabled()))
        self.timesteps.append(t.tolist())
        return self.weight * latents + text.mean(dim=(1, 2)).view(-1, 1, 1, 1) * 0.01


def run_sampler(keep, guidance: float = 4.5, detach_recorded: bool = False):
    unet = RecordingUnet()
    scheduler = sd_scheduler()
    z_t = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([600, 10])
    cond, uncond = torch.ones(2, 3, 5), torch.zeros(2, 3, 5)
    first = unet(z_t, t, cond)
    if detach_recorded:
        first = first.detach()
    unet.calls.clear()
    unet.timesteps.clear()
    z0 = guided_x0(unet, z_t, cond, uncond, first, scheduler.alphas_cumprod, plan=schedule(t, 20),
                   keep_grad_at=torch.as_tensor(keep).expand(2), guidance=guidance, prediction_type="epsilon",
                   generator=torch.Generator().manual_seed(4))
    return unet, z0


def test_sampler_keeps_the_gradient_of_one_unet_call_only():
    unet, z0 = run_sampler(keep=0)
    # Step 0 reuses the training prediction: its unconditional branch is the only new call (no grad);
    # every later step batches the conditional and unconditional branches into one call, without grad.
    assert all(not grad for _, grad in unet.calls), "no UNet call inside the sampler records a gradient"
    assert unet.calls[0][0] == 2 and all(n == 4 for n, _ in unet.calls[1:]), "cond and uncond share one call"
    z0.sum().backward()
    assert unet.weight.grad is not None and unet.weight.grad != 0, "the reused training prediction carries it"


def test_gradient_moves_with_the_recorded_call_and_vanishes_without_it():
    first, z_first = run_sampler(keep=0)
    z_first.sum().backward()
    last, z_last = run_sampler(keep=19)
    recorded = [grad for _, grad in last.calls]
    assert recorded.count(True) == 1 and recorded[-2] is True, "the last step's conditional call, with gradient"
    z_last.sum().backward()
    assert last.weight.grad != 0 and not torch.isclose(last.weight.grad, first.weight.grad)
    none, z_none = run_sampler(keep=0, detach_recorded=True)
    assert not z_none.requires_grad or torch.autograd.grad(z_none.sum(), none.weight, allow_unused=True)[0] is None


def test_per_sample_gradient_steps_leave_other_samples_detached():
    """Sample 0 records its gradient at step 5, sample 1 (t = 10: two steps) at its first step:
    each sample's x0 depends on the weight only through its own recorded call."""
    unet = RecordingUnet()
    scheduler = sd_scheduler()
    z_t = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([600, 10])
    cond, uncond = torch.ones(2, 3, 5), torch.zeros(2, 3, 5)
    first = unet(z_t, t, cond)
    unet.calls.clear()
    z0 = guided_x0(unet, z_t, cond, uncond, first, scheduler.alphas_cumprod, plan=schedule(t, 20),
                   keep_grad_at=torch.tensor([5, 0]), guidance=4.5, prediction_type="epsilon",
                   generator=torch.Generator().manual_seed(4))
    assert [grad for _, grad in unet.calls].count(True) == 1  # step 5's conditional call
    grads = [torch.autograd.grad(z0[b].sum(), unet.weight, retain_graph=True)[0] for b in range(2)]
    assert all(g != 0 for g in grads)
    # Moving sample 1's recorded call to its last step changes its gradient, not sample 0's.
    unet.calls.clear()
    first = unet(z_t, t, cond)
    z0b = guided_x0(unet, z_t, cond, uncond, first, scheduler.alphas_cumprod, plan=schedule(t, 20),
                    keep_grad_at=torch.tensor([5, 19]), guidance=4.5, prediction_type="epsilon",
                    generator=torch.Generator().manual_seed(4))
    moved = [torch.autograd.grad(z0b[b].sum(), unet.weight, retain_graph=True)[0] for b in range(2)]
    assert torch.isclose(moved[0], grads[0]) and not torch.isclose(moved[1], grads[1])


def test_guidance_one_skips_the_unconditional_branch():
    unet, _ = run_sampler(keep=0, guidance=1.0)
    assert unet.calls and all(n == 2 for n, _ in unet.calls), "conditional calls only"
    # Sample 0 (t = 600) takes steps 1..18; step 19 (t = 0 for both) is the last call.
    plan = schedule(torch.tensor([600, 10]), 20)
    assert unet.timesteps == [plan.times[:, i].tolist() for i in range(1, 20)]


def test_the_last_step_returns_the_x0_estimate_and_every_other_step_adds_noise():
    scheduler = sd_scheduler()
    sample = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    output = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    loud = torch.full((1, 4, 4, 4), 1e6)
    a = scheduler.alphas_cumprod

    def step(t, prev, noise):
        return ddpm_step(output, sample, torch.tensor([t]), torch.tensor([prev]), a, noise, "epsilon")

    assert torch.equal(step(0, -1, loud), predicted_x0(output, sample, a[0].view(1), "epsilon"))
    assert not torch.equal(step(1, 0, loud), step(1, 0, torch.zeros_like(loud)))


def test_predicted_x0_of_a_sample_prediction_is_the_output_and_unknown_types_are_named():
    output, sample, a = torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2), torch.tensor([0.3, 0.9])
    assert torch.equal(predicted_x0(output, sample, a, "sample"), output)
    with pytest.raises(ValueError, match="'flow'"):
        predicted_x0(output, sample, a, "flow")


def test_alpha_bar_follows_the_timesteps_device():
    from finetune.sampler import _alpha_bar

    assert _alpha_bar(sd_scheduler().alphas_cumprod, torch.tensor([5, -1]).to("meta")).device.type == "meta"


def test_min_snr_weights_follow_the_timesteps_device():
    from finetune.losses import min_snr_weights

    # The meta device stands in for a GPU: the schedule (on the CPU) must move to the timesteps.
    weights = min_snr_weights(sd_scheduler(), torch.tensor([10, 900]).to("meta"), 5.0, "epsilon")
    assert weights.device.type == "meta" and weights.shape == (2,)


def test_sampler_in_bfloat16_stays_finite_and_near_float32():
    # A bf16 run samples bf16 latents; alpha_bar(0) rounds to 1 in bf16, which once gave 0 / 0.
    scheduler = sd_scheduler()
    z_t = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500, 7, 300])  # three samples: the batched cond/uncond call splits in two halves
    text = torch.zeros(3, 3, 4)

    def unet(latents, ts, cond):
        return 0.1 * latents

    def run(dtype):
        return guided_x0(unet, z_t.to(dtype), text.to(dtype), text.to(dtype), 0.1 * z_t.to(dtype),
                         scheduler.alphas_cumprod, plan=schedule(t, 20), keep_grad_at=torch.zeros(3, dtype=torch.long),
                         guidance=4.5, prediction_type="epsilon", generator=torch.Generator().manual_seed(1))

    low, full = run(torch.bfloat16), run(torch.float32)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert torch.allclose(low.float(), full, rtol=0.05, atol=0.05)
