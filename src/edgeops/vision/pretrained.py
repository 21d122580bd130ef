"""ImageNet weights for torchvision backbones (`train.pretrained: true`), from the torch hub cache.

With internet, torchvision downloads them into $TORCH_HOME/hub/checkpoints; offline, the file must
already be there, and the error names it."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from edgeops.errors import EdgeopsError

DOWNLOAD_TIMEOUT_S = 30


def imagenet_state_dict(weights: Any) -> dict[str, Any]:
    """The state dict of a torchvision `Weights` enum member, from the cache or downloaded into it."""
    import torch

    file_name = weights.url.rsplit("/", 1)[-1]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    cached = cache / file_name
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise EdgeopsError(
            f"train.pretrained: cannot download {file_name} ({reason}): put the file at {cached} "
            f"(from {weights.url}; the folder is $TORCH_HOME/hub/checkpoints) or set train.pretrained: false"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def load_backbone(model: Any, state: dict[str, Any], skip_prefixes: tuple[str, ...]) -> None:
    """Load pretrained weights except the layers whose shape depends on the number of classes."""
    own = model.state_dict()
    kept = {
        k: v
        for k, v in state.items()
        if not k.startswith(skip_prefixes) and k in own and tuple(own[k].shape) == tuple(v.shape)
    }
    missing = [k for k in own if k not in kept and not k.startswith(skip_prefixes) and "num_batches" not in k]
    if missing:
        raise EdgeopsError(
            f"pretrained weights do not fit the model: {len(missing)} layer(s) missing, e.g. {missing[0]}"
        )
    model.load_state_dict(kept, strict=False)
