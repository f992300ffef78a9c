"""Generic captions (SCoFT's ``blip_text``): the scene without its cultural context.

The memorisation loss pulls the fine-tuned model's prediction for the community caption
towards its own prediction for this generic caption, so it must describe the same picture
without naming the culture. Three strategies:

* ``caption``: an image-to-text model (BLIP by default; any transformers image-to-text model
  id or folder), its output stripped with the culture's lexicon when configured;
* ``strip``: the community caption with the culture's lexicon terms removed or generalised;
* ``column``: the dataset's own ``blip_text``, kept as is (rows without one are reported).
"""

from __future__ import annotations

from typing import Any

from ccub.models import ModelRef, load_pretrained

STRATEGIES = ("caption", "strip", "column")


class Captioner:
    """An image-to-text model loaded once; call it with a batch of PIL images."""

    def __init__(self, ref: ModelRef, device: str, dtype: Any, prompt: str = "", max_tokens: int = 30):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.ref, self.device, self.dtype = ref, device, dtype
        self.prompt, self.max_tokens = prompt.strip(), max_tokens
        self.processor = load_pretrained(ref, "captioning model", AutoProcessor.from_pretrained)
        self.model = load_pretrained(ref, "captioning model", AutoModelForImageTextToText.from_pretrained, dtype=dtype)
        self.model.to(device).eval()

    def __call__(self, images: list) -> list[str]:
        import torch

        kwargs: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if self.prompt:
            kwargs["text"] = [self.prompt] * len(images)
        inputs = self.processor(**kwargs).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            # Greedy decoding: the same image gets the same caption on every rerun.
            out = self.model.generate(**inputs, max_new_tokens=self.max_tokens, do_sample=False)
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return [_drop_prompt(t, self.prompt) for t in texts]


def _drop_prompt(text: str, prompt: str) -> str:
    # Conditional captioners (BLIP) repeat their text prefix; the caption is what follows it.
    text = " ".join(text.split())
    if prompt and text.lower().startswith(prompt.lower()):
        text = text[len(prompt):].strip()
    return text
