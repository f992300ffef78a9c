"""`ccub benchmark`: base model against fine-tuned runs on identical seeds, scored with CLIP-based
proxies side by side, with paired statistics (`run.run_benchmark` is the entry point)."""
