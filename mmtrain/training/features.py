"""The feature cache: a frozen encoder's tokens for every training image, computed once so training skips the encoder.

``mmtrain preprocess ... features=true`` runs the encoder (in eval mode) over the store's train images and writes::

    STORE/features/KEY/
      features.json   the key and its short id KEY; written last, so a folder without it is incomplete
      train/          LitData items {image_id, features (N, D) float16, captions (JSON list)}

The key holds everything that changes the tokens: the timm model name and constructor arguments, the input size, a
sha256 of the encoder's weights (after pretrained or checkpoint loading), the stored images' resize spec and checksum,
and the pixel normalisation. ``fit`` computes the key of the encoder it built. With a frozen encoder
(``encoder.freeze=all``) and a cache of that key it trains from the cache; when the store holds caches of other keys
only, it stops with an error that names both keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmtrain.data.store import config_hash, item_image, require_store, write_items
from mmtrain.errors import UserError
from mmtrain.models.encoders import TimmEncoder

log = logging.getLogger(__name__)

FEATURES_DIR = "features"
KEY_FILE = "features.json"
CACHED_SPLITS = ("train",)  # validation and test decode from pixels, exactly as eval does


def weights_sha256(module: nn.Module) -> str:
    """sha256 over a module's state dict: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """Config containers as plain dicts and lists, so a key reads the same wherever the encoder was built."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def feature_key(encoder: TimmEncoder, manifest: dict) -> dict:
    """What the cached tokens depend on, for ``encoder`` over the store described by ``manifest``."""
    return {
        "model_name": encoder.model_name,
        "model_kwargs": _plain(encoder.model_kwargs),
        "img_size": int(encoder.img_size),
        "weights_sha256": weights_sha256(encoder),
        "resize": {name: manifest["resize"][name] for name in ("size", "mode")},
        "images_checksum": manifest["splits"]["train"]["checksum"],
        "mean": [float(m) for m in encoder.data_config["mean"]],
        "std": [float(s) for s in encoder.data_config["std"]],
        "dtype": "float16",
    }


def key_id(key: dict) -> str:
    """The short id of a key: its folder name under ``STORE/features``."""
    return config_hash(key)


def write_feature_cache(store_dir: str | Path, encoder: TimmEncoder, *, batch_size: int = 64) -> Path:
    """Cache ``encoder``'s tokens of the store's train images (a no-op when that key is cached); return its folder."""
    store, manifest = require_store(store_dir)
    key = feature_key(encoder, manifest)
    folder = store / FEATURES_DIR / key_id(key)
    if (folder / KEY_FILE).is_file():
        log.info("%s is complete and up to date; nothing to do", folder)
        return folder
    from mmtrain.io import write_json
    from mmtrain.models.loading import resolve_device

    encoder = encoder.to(resolve_device("auto")).eval()
    counts = {}
    for split in CACHED_SPLITS:
        items = _encoded_items(store / split, encoder, batch_size)
        counts[split] = write_items(folder / split, items, count_hint=manifest["splits"][split]["images"])
    write_json(folder / KEY_FILE, {"key": key_id(key), "encoder": key, "items": counts})
    log.info("cached %s tokens of %d images in %s", encoder.model_name, sum(counts.values()), folder)
    return folder


@torch.inference_mode()
def _encode(encoder: TimmEncoder, images: np.ndarray) -> np.ndarray:
    """uint8 images (B, H, W, 3) -> float16 tokens (B, N, D)."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).to(encoder.pixel_mean.device)  # (B, 3, H, W)
    return encoder(encoder.normalize(pixels)).to(torch.float16).cpu().numpy()


def _encoded_items(split_dir: Path, encoder: TimmEncoder, batch_size: int) -> Iterator[dict]:
    from litdata import StreamingDataset

    from mmtrain.progress import progress_bar

    if not (split_dir / "index.json").is_file():  # an empty split
        return
    stream = StreamingDataset(str(split_dir), shuffle=False, drop_last=False)
    with progress_bar(f"encoding {split_dir.name}", len(stream)) as advance:
        for start in range(0, len(stream), batch_size):
            items = [stream[i] for i in range(start, min(start + batch_size, len(stream)))]
            tokens = _encode(encoder, np.stack([item_image(item) for item in items]))  # (B, N, D)
            for item, features in zip(items, tokens, strict=True):
                text = {key: item[key] for key in ("captions", "prompts") if key in item}
                yield {"image_id": int(item["image_id"]), "features": features, **text}
            advance(len(items))


def _read_key(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["encoder"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UserError(f"{path}: corrupt feature cache key ({err}); delete its folder and preprocess again") from None


def find_feature_cache(store: Path, manifest: dict, encoder: TimmEncoder) -> Path | None:
    """The folder of ``encoder``'s cache in ``store``, or None when the store holds no cache.

    Raises:
        UserError: the store holds caches, but none made by this encoder over these images (one line, both keys).
    """
    root = store / FEATURES_DIR
    cached = {path.parent.name: path for path in sorted(root.glob(f"*/{KEY_FILE}"))}
    if not cached:
        return None
    key = feature_key(encoder, manifest)
    if key_id(key) in cached:
        return root / key_id(key)
    others = {name: _read_key(path) for name, path in cached.items()}
    differs = sorted({field for other in others.values() for field in key if other.get(field) != key[field]})
    raise UserError(
        f"{root}: the feature cache has key {', '.join(others)} but this encoder's key is {key_id(key)} "
        f"(they differ in {', '.join(differs)}); run mmtrain preprocess features=true with this encoder, "
        "or fit with feature_cache=false"
    )
