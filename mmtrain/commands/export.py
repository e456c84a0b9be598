"""mmtrain export: turn a Lightning checkpoint into a portable bundle."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def run(cfg: DictConfig) -> Path:
    from mmtrain.models.loading import load_model
    from mmtrain.outputs.bundle import read_metrics, write_bundle

    loaded = load_model(cfg.ckpt)
    out = write_bundle(Path(cfg.out), loaded, read_metrics(cfg.metrics))
    print(out)
    return out
