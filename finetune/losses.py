"""SCoFT's loss terms, each on a batch, each a scalar mean over the batch.

    L_LDM  mean squared error of the UNet's prediction against its target (noise or v)
    L_M    mean squared error against the same UNet's prediction for the generic caption,
           without gradient through that second prediction (memorisation)
    L_P    D_lpips(x0_hat, x+)                                                     (perceptual)
    L_C    D(x0_hat, x+) - mean over the image's negatives k of D(x0_hat, x-_k)    (contrastive)

Images without negatives contribute only the positive part of L_C: their negative part is left
out, never counted as a zero distance. Batches may mix images with different numbers of
negatives; `negative_mask` says which of the padded slots are real.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

# D(x, y) -> (B,) distances for images in [-1, 1].
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def wide(x: torch.Tensor) -> torch.Tensor:
    """`x` in float32 at least: half-precision outputs are widened, float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def per_sample_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(wide(a), wide(b), reduction="none").flatten(1).mean(dim=1)


def ldm_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """L_LDM; `weights` (B,) are min-SNR weights when used."""
    losses = per_sample_mse(prediction, target)
    if weights is not None:
        losses = losses * weights
    return losses.mean()


def memorisation_loss(prediction: torch.Tensor, generic_prediction: torch.Tensor) -> torch.Tensor:
    """L_M: pull eps(z_t, t, c) towards the frozen-for-this-step eps(z_t, t, c_B)."""
    return per_sample_mse(prediction, generic_prediction.detach()).mean()


def perceptual_loss(distance: Distance, x0_hat: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    return wide(distance(x0_hat, positives)).mean()


def contrastive_loss(distance: Distance, x0_hat: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                     negative_mask: torch.Tensor) -> torch.Tensor:
    """L_C with no margin.

    `negatives` (B, K, 3, H, W) padded, `negative_mask` (B, K) True where a slot holds a real negative.
    Distances are computed for real negatives only.
    """
    positive = wide(distance(x0_hat, positives))
    rows, slots = negative_mask.nonzero(as_tuple=True)
    negative_sum = torch.zeros_like(positive)
    if rows.numel():
        d = wide(distance(x0_hat[rows], negatives[rows, slots]))
        negative_sum = negative_sum.index_add(0, rows, d)
    # An image without negatives has a zero sum: its negative part is 0, its positive part stays.
    negative_mean = negative_sum / negative_mask.sum(dim=1).clamp(min=1)
    return (positive - negative_mean).mean()


def min_snr_weights(scheduler, t: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """min(SNR, gamma) / SNR per sample (Hang et al., 2023); for v-prediction divided by SNR + 1.
    SNR is diffusers' `compute_snr`, as in its training examples."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, t)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped / snr
