"""``encoder.pretrained=true`` without a network: fail in seconds, naming ``encoder.checkpoint=PATH``.

Without this, the Hugging Face hub client retries its download for about a minute and then raises its own exception.
A short TCP probe decides whether the hub can be reached; when it cannot, the hub is put in offline mode (so any
download attempt fails at once) and weights already in the local cache are still used.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from mmtrain.errors import UserError

PROBE_TIMEOUT_S = 3.0
OFFLINE_VALUES = ("1", "true", "yes", "on")


def hub_reachable() -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``, default huggingface.co) answers on its port within seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in OFFLINE_VALUES:
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def weights_cached(model_name: str) -> bool:
    """Whether timm's pretrained weights for ``model_name`` are already in the local hub or torch cache."""
    import timm

    try:
        pretrained = timm.models.get_pretrained_cfg(model_name)
    except Exception:  # noqa: BLE001 - an unknown name is timm's error to report, later
        return False
    if pretrained is None:
        return False
    if pretrained.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        files = ("model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin")
        return any(isinstance(try_to_load_from_cache(pretrained.hf_hub_id, name), str) for name in files)
    if pretrained.url:
        import torch

        return os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(pretrained.url)))
    return False


def check_pretrained_encoder(cfg) -> None:
    """Before a command builds ``cfg.encoder`` with ``pretrained=true``: go offline at once when the hub is away,
    and stop with one line when the weights are not cached either."""
    encoder = cfg.get("encoder")
    if not encoder or not encoder.get("pretrained") or encoder.get("checkpoint"):
        return
    if hub_reachable():
        return
    os.environ["HF_HUB_OFFLINE"] = "1"  # a download attempt now fails at once instead of retrying for a minute
    name = str(encoder.get("model_name"))
    if weights_cached(name):
        return
    raise UserError(
        f"encoder.pretrained=true: the weights of {name} are not in the local cache and the hub cannot be reached "
        "(no network); download them on a machine with one and pass encoder.checkpoint=PATH "
        "(.safetensors or .pth), or train from scratch with encoder.pretrained=false"
    )
