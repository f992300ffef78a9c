"""Weight memory of the models `ccub prepare` uses for real runs, from their architectures.

No weights are downloaded: each architecture is built on PyTorch's meta device from its
published configuration (written out below) and its parameters are counted. A second table
counts what `ccub finetune` keeps on its device besides the base model: the rank-64 LoRA and
the perceptual backbones. Activations come on top and depend on batch size and resolution:
`python bench/finetune_memory.py` measures them per fine-tuning configuration.

    python bench/model_memory.py
"""

from __future__ import annotations

import torch


def count(build) -> int:
    with torch.device("meta"):
        model = build()
    return sum(p.numel() for p in model.parameters())


def sd1_unet():
    from diffusers import UNet2DConditionModel

    # Stable Diffusion 1.x (CompVis/stable-diffusion-v1-4 unet/config.json).
    return UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                                cross_attention_dim=768, attention_head_dim=8)


def sd1_controlnet():
    from diffusers import ControlNetModel

    return ControlNetModel(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                           attention_head_dim=8)


def sd1_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


def clip_text():
    from transformers import CLIPTextConfig, CLIPTextModel

    # CLIP ViT-L/14's text tower, SD 1.x's text encoder.
    return CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, max_position_embeddings=77, projection_dim=768))


def blip_large():
    from transformers import BlipConfig, BlipForConditionalGeneration

    # Salesforce/blip-image-captioning-large: ViT-L/16 at 384 px and a BERT-base decoder.
    return BlipForConditionalGeneration(BlipConfig(
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                       "num_attention_heads": 16, "image_size": 384, "patch_size": 16},
        text_config={"vocab_size": 30524, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "encoder_hidden_size": 1024}))


def dpt_large():
    from transformers import DPTConfig, DPTForDepthEstimation

    # Intel/dpt-large (ViT-L/16, 384 px); an upper bound for the default Intel/dpt-hybrid-midas.
    return DPTForDepthEstimation(DPTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                           intermediate_size=4096, image_size=384,
                                           backbone_out_indices=[5, 11, 17, 23],
                                           neck_hidden_sizes=[256, 512, 1024, 1024]))


def sd1_unet_lora(rank: int = 64):
    """The SD 1.x UNet with `ccub finetune`'s LoRA (attention q, k, v, out of every block)."""
    from peft import LoraConfig

    unet = sd1_unet()
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    return unet


def count_trainable(build) -> int:
    with torch.device("meta"):
        model = build()
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def vgg16_trunk():
    from torchvision.models import vgg16

    # L_P's distance: VGG16's convolutions (its classifier is never used).
    return vgg16().features


def dreamsim_ensemble():
    from dreamsim.feature_extraction.vision_transformer import vit_base

    # L_C's default distance: DINO, CLIP and OpenCLIP ViT-B/16 (dreamsim's ensemble, its LoRA left out).
    return torch.nn.ModuleList([vit_base(patch_size=16) for _ in range(3)])


def table(parts: dict) -> None:
    print(f"{'model':44} {'parameters':>12} {'fp16 GB':>8} {'fp32 GB':>8}")
    for name, n in parts.items():
        if n is None:
            print(f"{name:44} {'(not installed)':>12}")
            continue
        print(f"{name:44} {n / 1e6:10.1f} M {n * 2 / 1e9:8.2f} {n * 4 / 1e9:8.2f}")


def main() -> None:
    parts = {"SD 1.x UNet": sd1_unet, "depth ControlNet (SD 1.x)": sd1_controlnet, "SD 1.x VAE": sd1_vae,
             "CLIP ViT-L/14 text encoder": clip_text, "BLIP large captioner": blip_large,
             "DPT-Large depth (upper bound)": dpt_large}
    counts = {name: count(build) for name, build in parts.items()}
    counts["all of them"] = sum(counts.values())
    print("ccub prepare's models")
    table(counts)
    print()
    print("ccub finetune, on its device besides the base model (UNet, VAE, text encoder)")
    extra = {"LoRA rank 64 on the UNet's attention (fp32)": count_trainable(sd1_unet_lora),
             "VGG16 trunk (L_P, perceptual = vgg)": count(vgg16_trunk)}
    try:
        extra["DreamSim ensemble, 3 x ViT-B/16 (L_C)"] = count(dreamsim_ensemble)
    except ImportError:
        extra["DreamSim ensemble, 3 x ViT-B/16 (L_C)"] = None
    table(extra)


if __name__ == "__main__":
    main()
