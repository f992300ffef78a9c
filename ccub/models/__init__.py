"""One home for models: how ccub names, finds and loads every model, and says when its weights are
random.

* `pretrained`: diffusers and transformers models named by a hub id (read from the local cache) or a
  `save_pretrained` folder (`resolve` -> `ModelRef`, `load_pretrained`, `ensure_available`);
* `needs`: every model a command needs, checked at once without loading (`Need`, `require_all`, fed
  by `check_pretrained` and `check_clip`);
* `clip`: open_clip models named by a spec string (`parse_clip` -> `ClipSpec`, `load_clip`);
* `common`: the `ModelUnavailable` error, the cache of tiny models, the hub probe, the one
  random-weights marker file and the tiny presets kept as data (`load_presets`).

Both references carry `random_weights`, which every record made with them repeats.
"""

from ccub.models.clip import (
    TINY_CLIP_PRESETS,
    ClipSpec,
    build_tiny_clip,
    check_clip,
    load_clip,
    parse_clip,
    register_clip_config,
)
from ccub.models.common import (
    RANDOM_MARKER,
    ModelUnavailable,
    hf_cache_dir,
    hub_offline,
    hub_reachable,
    load_presets,
    model_cache,
    random_marker,
)
from ccub.models.needs import Need, require_all
from ccub.models.pretrained import ModelRef, check_pretrained, ensure_available, load_pretrained, resolve

__all__ = ["RANDOM_MARKER", "TINY_CLIP_PRESETS", "ClipSpec", "ModelRef", "ModelUnavailable", "Need", "build_tiny_clip",
           "check_clip", "check_pretrained", "ensure_available", "hf_cache_dir", "hub_offline", "hub_reachable",
           "load_clip", "load_pretrained", "load_presets", "model_cache", "parse_clip", "random_marker",
           "register_clip_config", "require_all", "resolve"]
