"""mmtrain index: embed image files into an index folder, or grow one with the files it does not hold yet."""

from __future__ import annotations

import json

from omegaconf import DictConfig, ListConfig


def run(cfg: DictConfig) -> dict:
    from mmtrain.retrieval.build import build_index, print_skipped

    inputs = list(cfg.inputs) if isinstance(cfg.inputs, (list, ListConfig)) else [str(cfg.inputs)]
    report = build_index(
        ckpt=cfg.ckpt,
        inputs=[str(i) for i in inputs],
        out=cfg.out,
        dtype=str(cfg.dtype),
        batch_size=int(cfg.batch_size),
        workers=int(cfg.workers),
        device=cfg.device,
        backend=str(cfg.backend),
    )
    print_skipped(report)
    summary = {"index": str(cfg.out), **report.as_dict()}
    print(json.dumps(summary))
    return summary
