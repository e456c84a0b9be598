"""mmtrain preprocess: read a dataset, validate and clean it, and write the training store."""

from __future__ import annotations

import json
import logging

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("mmtrain.preprocess")


def run(cfg: DictConfig) -> dict:
    from hydra.utils import instantiate

    from mmtrain.data.preprocess import Preprocessor

    fingerprint = OmegaConf.to_container(cfg.data.source, resolve=True)
    preprocessor = Preprocessor(
        source=instantiate(cfg.data.source),
        out_dir=cfg.out,
        resize=instantiate(cfg.data.resize),
        text=instantiate(cfg.data.text),
        num_workers=int(cfg.num_workers),
        strict=bool(cfg.strict),
        shard_size=int(cfg.shard_size),
        fingerprint=fingerprint,
    )
    manifest = preprocessor.run()
    if cfg.features:
        _cache_features(cfg)
    for split, info in manifest["splits"].items():
        log.info(
            "%-5s %6d images  %6d captions  %4d rejected",
            split,
            info["images"],
            info["captions"]["kept"],
            info["rejected"],
        )
    print(
        json.dumps(
            {split: {"images": i["images"], "rejected": i["rejected"]} for split, i in manifest["splits"].items()}
        )
    )
    return manifest


def _cache_features(cfg: DictConfig) -> None:
    """Cache the tokens of ``cfg.encoder``, built exactly as fit builds it, over the store's train images."""
    import torch
    from hydra.utils import instantiate

    from mmtrain.training.features import write_feature_cache

    encoder = OmegaConf.to_container(cfg.encoder, resolve=True)
    encoder.update(img_size=int(cfg.data.resize.size), freeze="all")
    torch.manual_seed(int(cfg.seed))  # fit seeds the same way before it builds the encoder
    folder = write_feature_cache(cfg.out, instantiate(encoder), batch_size=int(cfg.feature_batch_size))
    log.info("feature cache: %s", folder)
