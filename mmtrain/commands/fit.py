"""mmtrain fit: train a captioner on a preprocessed store; keeps the best (val CIDEr-D) and last checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mmtrain.commands import record_dataset, require_full_batch, require_split
from mmtrain.errors import UserError

log = logging.getLogger("mmtrain.fit")


def _resume_path(cfg: DictConfig, out: Path, module, trainer) -> str | None:
    """The checkpoint to resume from, checked; Lightning then gets the copy read for the check."""
    if not cfg.resume:
        return None
    path = out / "checkpoints" / "last.ckpt" if cfg.resume == "last" else Path(cfg.resume)
    if not path.is_file():
        raise UserError(f"{path}: no checkpoint to resume from")
    from mmtrain.training.checkpoint_io import AtomicCheckpointIO, check_resumable

    checkpoint = check_resumable(path, module)
    if isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):
        trainer.strategy.checkpoint_io.keep(path, checkpoint)
    return str(path)


def _val_scenes(cfg: DictConfig, store: Path):
    if not cfg.data.get("scenes") or not (store / "scenes_val.json").is_file():
        return None
    from mmtrain.data.shapes import load_scenes

    return load_scenes(store / "scenes_val.json")


def use_feature_cache(cfg: DictConfig, datamodule, module) -> None:
    """Train from the store's cached encoder tokens when the encoder is frozen and a cache has its key."""
    encoder = module.captioner.encoder
    if not cfg.get("feature_cache", True) or not encoder.frozen:
        return
    from mmtrain.training.features import find_feature_cache

    folder = find_feature_cache(datamodule.store, datamodule.manifest, encoder)
    if folder is None:
        log.info("the encoder is frozen: mmtrain preprocess features=true would cache its tokens and speed up fit")
        return
    datamodule.use_feature_cache(folder)
    module.extra["feature_cache"] = folder.name
    log.info("training from the feature cache %s (the encoder's forward is skipped)", folder)


def build_module(cfg: DictConfig, datamodule):
    """The LightningModule for ``cfg``, with a freshly initialised captioner."""
    from hydra.utils import instantiate

    from mmtrain.models.build import build_captioner
    from mmtrain.tokens import TextIds
    from mmtrain.training.module import CaptionModule

    model_config = OmegaConf.to_container(cfg.model, resolve=True)
    stored_size = int(datamodule.manifest["image_size"])
    if model_config["encoder"].get("img_size") != stored_size:
        log.info("encoder.img_size set to %d, the size of the images in %s", stored_size, datamodule.store)
        model_config["encoder"]["img_size"] = stored_size
    scst = str(cfg.objective.loss.get("_target_", "")).endswith(".SelfCritical")
    if scst and datamodule.has_prompts:
        raise UserError(f"objective=scst does not use per-sample prompts yet, and {datamodule.store} has them")
    if scst and not (cfg.init_from or cfg.resume):
        raise UserError(
            "objective=scst refines a trained captioner: pass init_from=RUN/checkpoints/best.ckpt "
            "(a cross-entropy run's checkpoint) or resume=last"
        )
    captioner = build_captioner(model_config, datamodule.tokenizer.vocab_size)
    if "name_or_path" in model_config["decoder"]:  # a Hugging Face LM: its config goes into checkpoints
        from mmtrain.models.hf_decoder import record_lm_config

        record_lm_config(model_config, captioner.decoder)
    captioner.ids = TextIds.of(datamodule.tokenizer, datamodule.prompt)
    if cfg.init_from:
        _init_weights_from(captioner, Path(cfg.init_from), datamodule.tokenizer)
    objective = instantiate(cfg.objective.loss)
    ema = _weight_ema(cfg, captioner)
    if cfg.get("compile"):
        captioner.compile()  # in place: the training forward is compiled, state_dict keys and generation unchanged
    if hasattr(objective, "setup"):
        objective.setup(datamodule.references("train"))
    return CaptionModule(
        captioner=captioner,
        tokenizer=datamodule.tokenizer,
        model_config=model_config,
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        total_steps=int(cfg.trainer.max_steps),
        objective=objective,
        decoding=instantiate(cfg.val_decoding),
        references=datamodule.references("val"),
        scenes=_val_scenes(cfg, datamodule.store),
        extra={
            "store": datamodule.location,
            "data": str(cfg.data.name),
            "dataset": OmegaConf.to_container(cfg.data, resolve=True),
            "resize": datamodule.manifest.get("resize", {"size": datamodule.manifest["image_size"]}),
            "prompt": datamodule.prompt,
            "per_sample_prompts": datamodule.has_prompts,
        },
        ema=ema,
    )


def _weight_ema(cfg: DictConfig, captioner):
    """The EMA of the captioner's weights when ``ema.decay`` is set (made before compiling: it copies the model)."""
    decay = cfg.get("ema", {}).get("decay")
    if decay is None:
        return None
    if str(cfg.trainer.get("strategy", "")).startswith("fsdp"):
        raise UserError("ema.decay is not supported with FSDP (the average needs whole weights); use ddp or set null")
    if not 0.0 < float(decay) < 1.0:
        raise UserError(f"ema.decay must be in (0, 1) or null, got {decay}")
    from mmtrain.training.ema import WeightEMA

    return WeightEMA(captioner, decay=float(decay), start_step=int(cfg.ema.get("start_step", 0)))


def _init_weights_from(captioner, path: Path, tokenizer) -> None:
    """Start from another run's weights (e.g. SCST from a cross-entropy checkpoint); same model and tokenizer."""
    from mmtrain.models.loading import check_weights_fit, load_model

    source = load_model(path)
    if source.tokenizer.model_bytes != tokenizer.model_bytes:
        raise UserError(f"{path}: trained with another tokenizer than this run's; use the same data.store and decoder")
    state = source.captioner.state_dict()
    check_weights_fit(captioner, state, path, allow_missing=True)  # a new head (e.g. ITC's) starts fresh
    missing, _ = captioner.load_state_dict(state, strict=False)
    log.info("initialised from %s (%d new parameters: %s)", path, len(missing), missing[:3])


def build_trainer(cfg: DictConfig, out: Path):
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from mmtrain.progress import interactive
    from mmtrain.training.callbacks import FiniteLoss, LogHistory, RNGState, SignalCheckpoint
    from mmtrain.training.checkpoint_io import AtomicCheckpointIO
    from mmtrain.training.curves import Curves
    from mmtrain.training.loggers import build_loggers
    from mmtrain.training.progress import progress_callbacks

    ckpt_dir = out / "checkpoints"
    monitor = str(cfg.checkpoint_monitor)
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_top_k=1)
    periodic = ModelCheckpoint(
        dirpath=ckpt_dir, every_n_train_steps=int(cfg.checkpoint_every_n_steps), save_top_k=0, save_last=True
    )
    callbacks = [
        Curves(out / "curves.png"),  # first: a checkpoint written at the end of a step holds that step's point
        LogHistory(),
        RNGState(),
        best,
        periodic,
        SignalCheckpoint(ckpt_dir),
        FiniteLoss(ckpt_dir, int(cfg.nonfinite_skips)),
        *progress_callbacks(every=int(cfg.trainer.log_every_n_steps), image_size=int(cfg.data.resize.size)),
    ]
    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    return pl.Trainer(
        **trainer_args,
        default_root_dir=str(out),
        callbacks=callbacks,
        logger=build_loggers(cfg.logger),
        enable_model_summary=True,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=interactive(),  # otherwise a line every log_every_n_steps steps
    )


def _stamp_run(cfg: DictConfig, out: Path, datamodule, trainer) -> dict:
    """Write ``RUN/run_manifest.json`` (resolved config, code, versions, hardware, data checksums); return the stamp.

    The hardware is this process's; ``extra`` adds how many processes and nodes the run has.
    """
    from mmtrain.runinfo import write_run_manifest

    config = OmegaConf.to_container(cfg, resolve=True)
    extra = {"command": "fit", "processes": trainer.world_size, "nodes": trainer.num_nodes}
    store, url = datamodule.store, datamodule.url
    return write_run_manifest(out, config, store=store, store_url=url, extra=extra)["stamp"]


def _stop_if_interrupted(trainer) -> None:
    """A run stopped by SIGTERM or SIGINT exits 130, so that a script does not take it for a finished one."""
    from mmtrain.errors import EXIT_INTERRUPTED
    from mmtrain.training.callbacks import SignalCheckpoint
    from mmtrain.training.resume import continue_command

    stopped = next((c for c in trainer.callbacks if isinstance(c, SignalCheckpoint) and c.received), None)
    if stopped is not None:
        last = stopped.checkpoint_dir / "last.ckpt"
        raise UserError(
            f"{stopped.received} at step {trainer.global_step}: checkpoint written to {last}; "
            f"continue with: {continue_command(last, stopped.checkpoint_dir.parent)}",
            exit_code=EXIT_INTERRUPTED,
        )


def _say_which_run_resumes(cfg: DictConfig, out: Path) -> None:
    """``resume=last`` without ``out=`` continues the most recent run under ``runs/fit``: name it, or say there is none."""
    from mmtrain.training.resume import LAST, out_was_given

    if cfg.resume != "last" or out_was_given():
        return
    if not (out / LAST).is_file():
        raise UserError(f"resume=last: no run under {out.parent} has a {LAST}; pass out=RUN or resume=CHECKPOINT")
    log.warning("resume=last: continuing %s, the most recent run under %s (out=RUN picks another)", out, out.parent)


def _best_score(trainer) -> float | None:
    """Best validation CIDEr-D so far (the first ModelCheckpoint monitors it); None before any validation."""
    score = trainer.checkpoint_callback.best_model_score
    return None if score is None else float(score)


def _best_record(out: Path, monitor: str, last_metrics: dict) -> dict:
    """The monitored metric, the step of best.ckpt and its validation figures (``metrics``), and the last step's."""
    from mmtrain.runinfo import best_validation

    best = best_validation(out / "logs" / "metrics.csv", monitor)
    return {
        "monitor": monitor,
        "best_step": None if best is None else best["step"],
        "metrics": {} if best is None else best["metrics"],
        "last_metrics": last_metrics,
    }


def run(cfg: DictConfig) -> dict:
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate

    from mmtrain.io import write_json
    from mmtrain.training.launch import start_other_ranks, wait_for_ranks

    torch.set_float32_matmul_precision("high")
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    out = Path(cfg.out)
    _say_which_run_resumes(cfg, out)
    datamodule = instantiate(cfg.datamodule)
    require_split(datamodule.manifest, "val", datamodule.location, "fit validates on it to choose best.ckpt")
    require_full_batch(datamodule.manifest, int(cfg.datamodule.batch_size), datamodule.location)
    record_dataset(cfg, datamodule.manifest, datamodule.location)  # config.yaml names the store's own dataset
    module = build_module(cfg, datamodule)
    use_feature_cache(cfg, datamodule, module)
    trainer = build_trainer(cfg, out)
    stamp = _stamp_run(cfg, out, datamodule, trainer) if trainer.is_global_zero else None
    ranks = start_other_ranks(trainer, out)  # a plain `mmtrain fit trainer=ddp` on one node: ranks 1..N-1
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=_resume_path(cfg, out, module, trainer))
    except SystemExit:  # Lightning's SIGTERMException, raised after SignalCheckpoint wrote last.ckpt
        _stop_if_interrupted(trainer)
        raise
    wait_for_ranks(ranks)
    last_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = str(out / "checkpoints" / "best.ckpt")
    summary = {"out": str(out), "best_checkpoint": best, "last_checkpoint": str(out / "checkpoints" / "last.ckpt")}
    summary.update({"global_step": trainer.global_step, "best_score": _best_score(trainer)})
    summary.update(_best_record(out, str(cfg.checkpoint_monitor), last_metrics))
    summary["world_size"] = trainer.world_size
    if trainer.is_global_zero:
        write_json(out / "fit_summary.json", {**summary, "stamp": stamp})
    log.info("best checkpoint: %s", best)
    _stop_if_interrupted(trainer)
    return summary
