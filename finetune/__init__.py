"""SCoFT fine-tuning: `prepare` (generic captions and self-generated negatives) and the LoRA trainer (`train`).

See docs/prepare.md and docs/finetune.md; `ccub prepare` and
`ccub finetune` are the entry points.
"""
