"""SCoFT fine-tuning: `prepare` (generic captions and self-generated negatives) and the LoRA trainer (`train`).

See the README's "Preparing SCoFT data" and "Fine-tuning" sections; `ccub prepare` and
`ccub finetune` are the entry points.
"""
