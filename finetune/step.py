"""One SCoFT micro-batch: from clean latents to every loss term of the variant, as the reference
code computes it.

    t ~ U{min_timestep..max_timestep}, eps ~ N(0, I), z_t = add_noise(z0, eps, t)
    pred = eps_theta(z_t, t, c)                                    (the one UNet call with gradient)
    L_LDM = mse(pred, eps or v)                                    (min-SNR weighted if configured)
    L_M   = mse(pred, stop_grad(eps_theta(z_t, t, c_B)))           (variants M, MP, MPC)
    every `perceptual_interval`-th micro-batch (variants MP, MPC):
        x0_hat = VAE.decode(guided sampler from z_t to 0 / scaling factor)
        L_P = D_P(x0_hat, x+)                                      (VGG16 features by default)
        L_C = D(x0_hat, x+) - mean_k D(x0_hat, x-_k)               (MPC; MP keeps D(x0_hat, x+) only)
    total = 0.7 L_LDM + 0.3 L_M + 0.05 L_C + 0.01 L_P; plain LoRA is L_LDM alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from finetune.config import ScoftConfig
from finetune.data import Batch
from finetune.losses import contrastive_loss, ldm_loss, memorisation_loss, min_snr_weights, perceptual_loss, wide
from finetune.sampler import grad_draw, grad_steps, guided_x0, schedule


@dataclass
class Frozen:
    """What a step needs besides the trainable UNet, all frozen."""

    vae: Any
    scheduler: Any  # DDPM training scheduler
    empty: torch.Tensor  # (77, D) embedding of the empty prompt
    perceptual: Any = None  # L_P's distance
    contrast: Any = None  # L_C's distance


def perceptual_due(cfg: ScoftConfig, micro_index: int) -> bool:
    # The variants that decode x0_hat (MP, MPC) carry L_P and L_C together.
    return "perceptual" in cfg.terms() and micro_index % cfg.perceptual_interval == 0


def weights(cfg: ScoftConfig) -> dict[str, float]:
    if cfg.variant == "lora":
        return {"ldm": 1.0}  # plain LoRA fine-tuning: the usual diffusion loss, unweighted
    table = {"ldm": cfg.weight_ldm, "memorisation": cfg.weight_memorisation,
             "perceptual": cfg.weight_perceptual, "contrastive": cfg.weight_contrastive}
    return {term: table[term] for term in cfg.terms()}


def unet_call(unet) -> Any:
    def call(latents: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return unet(latents, t, encoder_hidden_states=text).sample
    return call


def scoft_losses(unet, frozen: Frozen, batch: Batch, cfg: ScoftConfig, micro_index: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(weighted total, every computed term) for one micro-batch; randomness from `generator` only."""
    call = unet_call(unet)
    scheduler = frozen.scheduler
    z0 = batch.latents
    size = z0.shape[0]
    noise = torch.randn(z0.shape, generator=generator, dtype=torch.float32).to(z0.device, z0.dtype)
    t = torch.randint(cfg.min_timestep, cfg.max_timestep + 1, (size,), generator=generator).to(z0.device)
    z_t = scheduler.add_noise(z0, noise, t)
    prediction_type = scheduler.config.prediction_type
    target = scheduler.get_velocity(z0, noise, t) if prediction_type == "v_prediction" else noise
    pred = call(z_t, t, batch.text)
    snr = min_snr_weights(scheduler, t, cfg.snr_gamma, prediction_type) if cfg.snr_gamma > 0 else None
    terms = {"ldm": ldm_loss(pred, target, snr)}
    wanted = cfg.terms()
    if "memorisation" in wanted:
        with torch.no_grad():
            generic_pred = call(z_t, t, batch.generic)
        terms["memorisation"] = memorisation_loss(pred, generic_pred)
    # Drawn on every micro-batch, used or not, so the generator's stream never depends on the interval.
    draw = grad_draw(size, generator)
    if perceptual_due(cfg, micro_index):
        x0_hat = decode_x0(call, frozen, z_t, t, pred, batch, cfg, draw, generator, prediction_type)
        # Distances with random views (CLIP's) draw them from the step's generator: reproducible.
        if "perceptual" in wanted:
            terms["perceptual"] = perceptual_loss(partial(frozen.perceptual, generator=generator), x0_hat,
                                                  batch.pixels)
        if "contrastive" in wanted:
            mask = batch.negative_mask if cfg.uses_negatives() else torch.zeros_like(batch.negative_mask)
            terms["contrastive"] = contrastive_loss(partial(frozen.contrast, generator=generator), x0_hat,
                                                    batch.pixels, batch.negatives, mask)
    w = weights(cfg)
    total = sum(w[name] * value for name, value in terms.items())
    return total, terms


def decode_x0(call, frozen: Frozen, z_t, t, pred, batch: Batch, cfg: ScoftConfig, draw: torch.Tensor,
              generator: torch.Generator, prediction_type: str) -> torch.Tensor:
    """x0_hat: guided sampling from z_t, then the frozen VAE's decoder (with gradient).

    Not clamped, as in the reference code: a clamp would cut the gradient of every pixel the
    decoder pushes past [-1, 1]."""
    uncond = frozen.empty.expand_as(batch.text)
    plan = schedule(t, cfg.sampler_steps, cfg.sampler_spacing)
    z0_hat = guided_x0(call, z_t, batch.text, uncond, pred, frozen.scheduler.alphas_cumprod, plan=plan,
                       keep_grad_at=grad_steps(cfg.grad_step, plan, draw), guidance=cfg.sampler_guidance,
                       prediction_type=prediction_type, generator=generator)
    vae = frozen.vae
    # The VAE runs in its own (fp32 or bf16) precision: fp16 decoding overflows into NaNs.
    with torch.autocast(device_type=z0_hat.device.type, enabled=False):
        image = vae.decode((z0_hat / vae.config.scaling_factor).to(vae.dtype)).sample
    return wide(image)
