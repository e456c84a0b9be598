"""mmtrain eval: caption a split with a model and score it, or score a COCO results file (no torch)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from mmtrain.commands import require_split
from mmtrain.errors import UserError

log = logging.getLogger("mmtrain.eval")


def _score_files(cfg: DictConfig, results: Path, references: Path) -> dict:
    from mmtrain.metrics.evaluate import evaluate_files

    return evaluate_files(
        results,
        references,
        Path(cfg.out),
        allow_partial=bool(cfg.allow_partial),
        compare=cfg.compare,
        meteor=cfg.meteor,
        spice_jar=cfg.spice_jar,
        bootstrap=int(cfg.bootstrap),
    )


def _caption_split(cfg: DictConfig) -> tuple[Path, Path, Path, str | None]:
    """Generate captions for ``cfg.split`` with ``cfg.ckpt``; return (results file, references file, store, URL).

    A store URL (``s3://...``) is mirrored locally first; the returned store is then that mirror.
    """
    import torch
    from hydra.utils import instantiate

    from mmtrain.data.datamodule import CaptionDataModule
    from mmtrain.data.remote import is_url
    from mmtrain.io import write_json
    from mmtrain.models.loading import load_model
    from mmtrain.progress import progress_bar

    model = load_model(cfg.ckpt).to(cfg.device)
    source = str(cfg.store or model.extra.get("store") or "")
    remote = None
    if is_url(source):  # mirrored first: the references are read from the local mirror
        remote = CaptionDataModule(store=source, eval_batch_size=int(cfg.batch_size), cache_dir=cfg.cache_dir)
    store = remote.store if remote else Path(source)
    if not (store / f"references_{cfg.split}.json").is_file():
        raise UserError(f"{source}: no '{cfg.split}' split in this store (set store=PATH or split=val|test)")
    data = remote or CaptionDataModule(store=str(store), eval_batch_size=int(cfg.batch_size))
    require_split(data.manifest, cfg.split, source, f"eval split={cfg.split} has nothing to caption")
    _check_image_size(model, data.manifest, cfg.ckpt, source)
    decoding = model.decoding if cfg.use_checkpoint_decoding else instantiate(cfg.decoding)
    results = []
    loader = data.loader(cfg.split)
    with torch.inference_mode(), progress_bar(f"captioning {cfg.split}", len(loader.dataset)) as advance:
        for batch in loader:
            if batch.prompts is not None:
                results += _answer(model, batch, decoding)
            else:
                captions = model.caption(batch.images, decoding)
                ids = batch.image_ids.tolist()
                results += [{"image_id": i, "caption": c[0]} for i, c in zip(ids, captions, strict=True)]
            advance(len(batch.image_ids))
    path = Path(cfg.out) / f"results_{cfg.split}.json"
    write_json(path, results)
    if model.captioner.contrastive is not None and not data.has_prompts:  # retrieval pairs images with captions
        _write_retrieval(cfg, model, data, store)
    return path, store / f"references_{cfg.split}.json", store, data.url


def _answer(model, batch, decoding) -> list[dict]:
    """Result rows of a batch from a store with prompts: one per (image, prompt) pair, keyed as its references are."""
    from mmtrain.data.prompts import pair_key

    answers = model.caption_prompted(batch.images, batch.prompts, decoding)
    rows = []
    for image_id, prompts, captions in zip(batch.image_ids.tolist(), batch.prompts, answers, strict=True):
        for index, (prompt, caption) in enumerate(zip(prompts, captions, strict=True)):
            rows.append({"image_id": pair_key(image_id, index), "prompt": prompt, "caption": caption[0]})
    return rows


def _check_image_size(model, manifest: dict, ckpt: str, store: str) -> None:
    """A store of another image size than the checkpoint's: one line naming both, before any tensor shape clash."""
    trained = int(model.extra.get("resize", {}).get("size") or model.captioner.encoder.img_size)
    stored = int(manifest.get("image_size", trained))
    if stored != trained:
        raise UserError(
            f"{ckpt} was trained on {trained} px images but {store} holds {stored} px images; "
            f"evaluate on a store preprocessed with data.resize.size={trained} (store=PATH)"
        )


def _write_retrieval(cfg: DictConfig, model, data, store: Path) -> None:
    """R@K of the contrastive head over the split, saved for the metrics file."""
    from mmtrain.io import write_json
    from mmtrain.training.retrieval import retrieval_metrics

    lowercase = bool(data.manifest.get("text", {}).get("lowercase", True))
    recall = retrieval_metrics(model, data.loader(cfg.split), data.references(cfg.split), lowercase=lowercase)
    write_json(Path(cfg.out) / "retrieval.json", recall)


def _add_scene_accuracy(metrics: dict, results: Path, scenes_path: Path, out: Path) -> None:
    from mmtrain.data.shapes import load_scenes, scene_accuracy
    from mmtrain.io import write_json
    from mmtrain.metrics.coco_files import load_results

    candidates = load_results(results)
    metrics["scene_accuracy"] = scene_accuracy(candidates, load_scenes(scenes_path))
    write_json(out / "metrics.json", metrics)


def _merge_retrieval(metrics: dict, out: Path) -> None:
    from mmtrain.io import write_json

    path = out / "retrieval.json"
    if path.is_file():
        metrics["retrieval"] = json.loads(path.read_text(encoding="utf-8"))
        metrics.update({k: v for k, v in metrics["retrieval"].items() if k.startswith(("t2i", "i2t"))})
        write_json(out / "metrics.json", metrics)


def _add_stamp(cfg: DictConfig, metrics: dict, store: Path | None, store_url: str | None = None) -> None:
    """Record what produced these numbers: ``run_manifest.json`` beside ``metrics.json``, and the stamp in it."""
    from omegaconf import OmegaConf

    from mmtrain.io import write_json
    from mmtrain.runinfo import write_run_manifest

    extra = {"command": "eval", "ckpt": cfg.ckpt, "results": cfg.results, "references": cfg.references}
    config = OmegaConf.to_container(cfg, resolve=True)
    stamp = write_run_manifest(Path(cfg.out), config, store=store, store_url=store_url, extra=extra)["stamp"]
    metrics["stamp"] = stamp
    write_json(Path(cfg.out) / "metrics.json", metrics)


def run(cfg: DictConfig) -> dict:
    if cfg.ckpt and cfg.results:
        raise UserError("give either ckpt=... (caption and score a split) or results=... references=..., not both")
    store = store_url = None
    if cfg.results:
        if not cfg.references:
            raise UserError("results=... needs references=COCO_CAPTIONS_JSON")
        metrics = _score_files(cfg, Path(cfg.results), Path(cfg.references))
    elif cfg.ckpt:
        results, references, store, store_url = _caption_split(cfg)
        metrics = _score_files(cfg, results, references)
        if (store / f"scenes_{cfg.split}.json").is_file():
            _add_scene_accuracy(metrics, results, store / f"scenes_{cfg.split}.json", Path(cfg.out))
        _merge_retrieval(metrics, Path(cfg.out))
    else:
        raise UserError("nothing to evaluate: give ckpt=PATH [split=test] or results=FILE references=FILE")
    _add_stamp(cfg, metrics, store, store_url)
    headline = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    print(json.dumps(headline))
    return metrics
