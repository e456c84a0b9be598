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
        seed=int(cfg.seed),
        fingerprint=fingerprint,
    )
    manifest = preprocessor.run()
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
