"""mmtrain preprocess: read a dataset, validate and clean it, and write the training store."""

from __future__ import annotations

import json
import logging

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("mmtrain.preprocess")


def run(cfg: DictConfig) -> dict:
    from hydra.utils import instantiate

    from mmtrain.data.preprocess import Preprocessor
    from mmtrain.data.sources.base import HeldOut
    from mmtrain.data.store import ImageCoding

    fingerprint = source_fingerprint(cfg)
    fractions = {key: float(cfg.data.get(key) or 0.0) for key in ("val_fraction", "test_fraction")}
    if any(fractions.values()):  # part of the store's identity: another fraction makes another store
        fingerprint = {**fingerprint, **fractions, "seed": int(cfg.seed)}
    preprocessor = Preprocessor(
        source=HeldOut(source=instantiate(cfg.data.source), **fractions, seed=int(cfg.seed)),
        out_dir=cfg.out,
        resize=instantiate(cfg.data.resize),
        text=instantiate(cfg.data.text),
        num_workers=cfg.num_workers,
        strict=bool(cfg.strict),
        shard_size=int(cfg.shard_size),
        fingerprint=fingerprint,
        image_coding=ImageCoding(format=str(cfg.image_format), quality=cfg.image_quality),
        dataset=_dataset(cfg),
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
    _warn_empty_splits(manifest)
    print(
        json.dumps(
            {split: {"images": i["images"], "rejected": i["rejected"]} for split, i in manifest["splits"].items()}
        )
    )
    return manifest


def source_fingerprint(cfg: DictConfig) -> dict:
    """The source's settings, part of the store's config hash. An unset ``prompt_column`` is left out, so a store
    made before tables had prompt columns keeps its hash (preprocess again finds it up to date)."""
    fingerprint = OmegaConf.to_container(cfg.data.source, resolve=True)
    if "prompt_column" in fingerprint and fingerprint["prompt_column"] is None:
        del fingerprint["prompt_column"]
    return fingerprint


def _dataset(cfg: DictConfig) -> dict:
    """What the store is made from, for the manifest: fit and export name it in their run records."""
    source = OmegaConf.to_container(cfg.data.source, resolve=True)
    source.pop("prepare", None)  # how a built-in dataset is generated, not where it is read from
    root = source.get("image_root") or source.get("root") or cfg.data.get("root")
    fractions = {key: cfg.data.get(key) for key in ("val_fraction", "test_fraction") if cfg.data.get(key)}
    return {"name": str(cfg.data.name), "root": None if root is None else str(root), "source": source, **fractions}


def _warn_empty_splits(manifest: dict) -> None:
    """An empty val split stops fit, an empty test split leaves eval nothing: say so now, with the remedy."""
    needs = {"val": "fit validates on it", "test": "mmtrain eval split=test will have nothing to score"}
    for split, why in needs.items():
        if manifest["splits"].get(split, {}).get("images", 0) == 0:
            log.warning(
                "the %s split is empty: %s; hold out images with data.%s_fraction=0.1 (or give the source a %s split)",
                split,
                why,
                split,
                split,
            )


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
