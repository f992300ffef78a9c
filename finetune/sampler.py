"""The short guided sampler that turns a training latent z_t into x0_hat for the perceptual losses.

From z_t (per-sample timestep t) it runs classifier-free-guided DDPM steps down to t = 0 on the
training scheduler's noise schedule. With `spacing = "reference"` (the reference code's) the
`steps` timesteps are t, t - s, t - 2s, ..., t - (steps - 2) s, 0 with s = t // (steps - 1), or
just [t, 0] when t < steps - 1; `spacing = "even"` spaces them evenly from t to 0 instead
(the reference's last jump from t - (steps - 2) s to 0 can span up to steps - 1 stride lengths).
Each sample of a batch keeps its own schedule: timesteps are a (batch, steps) table in which
unused entries are skipped.

The gradient flows through exactly one UNet call per sample (`grad_steps`): by default the
first, whose conditional prediction is the training prediction eps_theta(z_t, t, c) itself;
"last" and "random" (drawn over the steps the sample actually takes, as the reference code
draws it) move it. Every other UNet call runs without gradient, while the latent stays
attached through the (linear) DDPM updates. Conditional and unconditional branches share one
UNet call where neither needs a gradient; the unconditional branch is skipped when the
guidance scale is 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from finetune.config import GRAD_STEPS, SPACINGS

# unet(latents, timesteps, text_embeddings) -> model output (eps or v), same shape as latents.
UnetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Schedule:
    times: torch.Tensor  # (B, S) long: the timestep at each step
    active: torch.Tensor  # (B, S) bool: whether the sample takes this step
    next_times: torch.Tensor  # (B, S) long: where the step goes (-1: past the end, alpha_bar = 1)


def schedule(t: torch.Tensor, steps: int, spacing: str = "reference") -> Schedule:
    """Per-sample timesteps from t down to 0 (see the module doc)."""
    batch = t.shape[0]
    if spacing == "reference":
        stride = (t // (steps - 1))[:, None]
        times = t[:, None] - torch.arange(steps, device=t.device)[None, :] * stride
        times[:, -1] = 0
    elif spacing == "even":
        # floor(t (n - i) / n + 1/2) in integers: exact at halves, where floats round either way
        # (and round-half-to-even could repeat a timestep).
        n = steps - 1
        remaining = n - torch.arange(steps, device=t.device)
        times = (2 * t[:, None] * remaining[None, :] + n) // (2 * n)
    else:
        raise ValueError(f"sampler spacing {spacing!r}: expected one of {', '.join(SPACINGS)}")
    active = torch.ones(batch, steps, dtype=torch.bool, device=t.device)
    # [t, 0] when t < steps - 1: the first and the last step only (both spacings start at t and end at 0).
    active[t < steps - 1, 1:-1] = False
    next_times = torch.full_like(times, -1)
    for b in range(batch):
        positions = active[b].nonzero().flatten().tolist()
        for here, there in itertools.pairwise(positions):
            next_times[b, here] = times[b, there]
    return Schedule(times, active, next_times)


def _alpha_bar(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """alpha_bar at t, with alpha_bar(-1) = 1 (the step past t = 0 returns the x0 estimate)."""
    values = alphas_cumprod.to(t.device)[t.clamp(min=0)]
    return torch.where(t < 0, torch.ones_like(values), values)


def predicted_x0(output: torch.Tensor, sample: torch.Tensor, a_t: torch.Tensor, prediction_type: str) -> torch.Tensor:
    a_t = a_t.view(-1, *([1] * (sample.dim() - 1)))
    if prediction_type == "epsilon":
        return (sample - (1 - a_t).sqrt() * output) / a_t.sqrt()
    if prediction_type == "v_prediction":
        return a_t.sqrt() * sample - (1 - a_t).sqrt() * output
    if prediction_type == "sample":
        return output
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def ddpm_step(output: torch.Tensor, sample: torch.Tensor, t: torch.Tensor, prev_t: torch.Tensor,
              alphas_cumprod: torch.Tensor, noise: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """One DDPM ancestral step from t to prev_t per sample (diffusers' DDPMScheduler.step with a
    custom previous timestep, "fixed_small" variance, no clipping), written out so a batch may
    hold different timesteps and the latent's gradient stays attached.

    Computed in float32 at least and returned in the sample's dtype: in bfloat16, alpha_bar(0) =
    0.99915 rounds to 1 and the last step's 1 - alpha_bar divides zero by zero."""
    dtype = torch.promote_types(sample.dtype, torch.float32)
    a_t, a_prev = _alpha_bar(alphas_cumprod, t).to(dtype), _alpha_bar(alphas_cumprod, prev_t).to(dtype)
    out_dtype, output, sample = sample.dtype, output.to(dtype), sample.to(dtype)
    x0 = predicted_x0(output, sample, a_t, prediction_type)
    shape = (-1, *([1] * (sample.dim() - 1)))
    beta = (1 - a_t / a_prev).view(shape)
    a_t_, a_prev_ = a_t.view(shape), a_prev.view(shape)
    mean = (a_prev_.sqrt() * beta / (1 - a_t_)) * x0 + ((1 - beta).sqrt() * (1 - a_prev_) / (1 - a_t_)) * sample
    variance = ((1 - a_prev_) / (1 - a_t_) * beta).clamp(min=1e-20)
    # As in DDPM, every step from t > 0 adds noise; the step from t = 0 returns the x0 estimate.
    stochastic = (t > 0).to(sample.dtype).view(shape)
    return (mean + stochastic * variance.sqrt() * noise.to(dtype)).to(out_dtype)


def grad_draw(size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(size,) uniforms in [0, 1) for `grad_steps`; drawn on every micro-batch whatever the mode,
    so the generator's stream never depends on it."""
    return torch.rand(size, generator=generator, dtype=torch.float64)


def grad_steps(mode: str, plan: Schedule, draw: torch.Tensor) -> torch.Tensor:
    """(B,) the step of each sample whose conditional UNet call keeps its gradient: its first or
    last step, or one drawn uniformly over the steps the sample takes (2 when t < steps - 1)."""
    taken = plan.active.sum(dim=1)
    if mode == "first":
        pick = torch.zeros_like(taken)
    elif mode == "last":
        pick = taken - 1
    elif mode == "random":
        pick = (draw.to(taken.device) * taken).long()  # draw < 1, so pick < taken
    else:
        raise ValueError(f"grad_step {mode!r}: expected one of {', '.join(GRAD_STEPS)}")
    # The pick-th active step of each sample.
    order = plan.active.long().cumsum(dim=1) - 1
    hit = plan.active & (order == pick[:, None])
    return hit.long().argmax(dim=1)


def guided_x0(unet: UnetFn, z_t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
              first_cond: torch.Tensor, alphas_cumprod: torch.Tensor, *, plan: Schedule, keep_grad_at: torch.Tensor,
              guidance: float, prediction_type: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The latent x0 estimate from z_t (see the module doc).

    `first_cond` is the training prediction eps_theta(z_t, t, c), reused as the first conditional
    prediction. `keep_grad_at` (B,) is the step whose conditional UNet call keeps each sample's
    gradient (`grad_steps`).
    """
    latent = z_t
    steps = plan.times.shape[1]
    for i in range(steps):
        ts, active = plan.times[:, i], plan.active[:, i]
        if not active.any():
            continue
        cond_out, uncond_out = _predict(unet, latent, ts, cond, uncond, first_cond if i == 0 else None,
                                        grad_rows=active & (keep_grad_at == i), guided=guidance != 1.0)
        output = cond_out if uncond_out is None else uncond_out + guidance * (cond_out - uncond_out)
        noise = torch.randn(latent.shape, generator=generator, device="cpu", dtype=torch.float32)
        stepped = ddpm_step(output, latent, ts, plan.next_times[:, i], alphas_cumprod,
                            noise.to(latent.device, latent.dtype), prediction_type)
        latent = torch.where(active.view(-1, *([1] * (latent.dim() - 1))), stepped, latent)
    return latent


def _rows(grad: torch.Tensor, grad_rows: torch.Tensor) -> torch.Tensor:
    """`grad` where a row keeps its gradient, the same values detached elsewhere."""
    if grad_rows.all():
        return grad
    return torch.where(grad_rows.view(-1, *([1] * (grad.dim() - 1))), grad, grad.detach())


def _predict(unet: UnetFn, latent: torch.Tensor, ts: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
             reuse: torch.Tensor | None, *, grad_rows: torch.Tensor, guided: bool):
    """(conditional, unconditional or None) predictions; only the conditional one may carry a
    gradient, and only in `grad_rows`."""
    if reuse is not None:
        cond_out = _rows(reuse, grad_rows) if grad_rows.any() else reuse.detach()
        if not guided:
            return cond_out, None
        with torch.no_grad():
            return cond_out, unet(latent.detach(), ts, uncond)
    if grad_rows.any():
        cond_out = _rows(unet(latent, ts, cond), grad_rows)
        if not guided:
            return cond_out, None
        with torch.no_grad():
            return cond_out, unet(latent.detach(), ts, uncond)
    with torch.no_grad():
        if not guided:
            return unet(latent.detach(), ts, cond), None
        both = unet(torch.cat([latent.detach()] * 2), torch.cat([ts, ts]), torch.cat([cond, uncond]))
        cond_out, uncond_out = both.chunk(2)
        return cond_out, uncond_out
