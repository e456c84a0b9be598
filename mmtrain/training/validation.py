"""Metrics computed on validation captions: CIDEr-D (and friends), collapse monitors, scene accuracy.

Under DDP each rank decodes part of the split; the captions are gathered first, so every rank scores all of them.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def gather_candidates(candidates: dict[int, str]) -> dict[int, str]:
    """Every rank's validation captions merged by image id (the sampler may give an image to two ranks)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return dict(candidates)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, sorted(candidates.items()))
    return dict(sorted(pair for part in parts for pair in part))


def validation_metrics(
    candidates: dict[int, str], references: dict[int, list[str]], scenes: dict | None
) -> dict[str, float]:
    """Scores of ``candidates`` against ``references``; adds ``scene_accuracy`` when ``scenes`` are known."""
    if not candidates:
        return {}
    from mmtrain.metrics import coco_caption_scores

    refs = {i: references[i] for i in candidates if i in references}
    scores = coco_caption_scores(refs, {i: candidates[i] for i in refs}) if refs else {}
    metrics = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
    unique = len(set(candidates.values())) / len(candidates)
    metrics["unique_ratio"] = unique
    metrics["mean_length"] = sum(len(c.split()) for c in candidates.values()) / len(candidates)
    if unique < 0.1 and len(candidates) >= 20:
        log.warning("caption collapse: only %.1f%% of validation captions are distinct", 100 * unique)
    if scenes:
        from mmtrain.data.shapes import scene_accuracy

        metrics["scene_accuracy"] = scene_accuracy(candidates, scenes)
    return metrics
