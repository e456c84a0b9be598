"""The LightningModule: composes the captioner with its objectives, validation decoding and metrics."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from mmtrain.data.datamodule import Batch
from mmtrain.models.captioner import Captioner
from mmtrain.models.generation import DecodingConfig
from mmtrain.tokens import Tokenizer
from mmtrain.training.ema import WeightEMA
from mmtrain.training.optim import build_optimizer, warmup_cosine

log = logging.getLogger(__name__)


class CaptionModule(pl.LightningModule):
    """Cross-entropy captioning with validation by decoding and CIDEr-D.

    Args:
        captioner: the model.
        tokenizer: the store's tokenizer (decodes validation captions; saved into checkpoints).
        model_config: the plain-dict config that rebuilds ``captioner`` (saved into checkpoints).
        optim: lr, encoder_lr, weight_decay, betas, warmup_steps, min_lr_ratio.
        total_steps: optimizer steps of the whole run, for the schedule.
        objective: a training objective (see :mod:`mmtrain.training.objectives`); cross-entropy by default.
        decoding: validation decoding preset.
        references: val references by image id (raw captions).
        scenes: val scenes for the built-in dataset's scene checker, or None.
        extra: plain values saved into checkpoints (e.g. the store path).
        ema: an exponential moving average of ``captioner``'s weights, updated after each optimizer step; when
            given, validation decodes with it (so the best checkpoint is chosen by the EMA weights).
    """

    def __init__(
        self,
        *,
        captioner: Captioner,
        tokenizer: Tokenizer,
        model_config: dict,
        optim: dict,
        total_steps: int,
        objective=None,
        decoding: DecodingConfig | None = None,
        references: dict[int, list[str]] | None = None,
        scenes: dict | None = None,
        extra: dict | None = None,
        ema: WeightEMA | None = None,
    ) -> None:
        super().__init__()
        self.captioner, self.tokenizer, self.model_config = captioner, tokenizer, model_config
        from mmtrain.training.objectives import CrossEntropy

        self.optim, self.total_steps = dict(optim), total_steps
        self.objective = objective or CrossEntropy()
        self.decoding = decoding or DecodingConfig()
        self.references, self.scenes, self.extra = references or {}, scenes, dict(extra or {})
        self._candidates: dict[int, str] = {}
        self.ema = ema

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 (B, 3, H, W) -> normalised float (B, 3, H, W)."""
        return self.captioner.normalize(images)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, parts = self.objective(self, batch)
        size = batch.image_ids.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:  # here, not in a batch-end hook: checkpoint callbacks run before those
            self.ema.update(self.captioner)

    @property
    def inference_captioner(self) -> Captioner:
        """The weights validation decodes with: the EMA copy when there is one."""
        return self.ema.model if self.ema is not None else self.captioner

    @torch.no_grad()
    def generate_captions(self, images: Tensor, decoding: DecodingConfig | None = None) -> list[str]:
        """Decode uint8 images to caption strings (first returned sequence per image)."""
        sequences = self.inference_captioner.generate(self.normalize(images), config=decoding or self.decoding)
        return [self.tokenizer.decode(seqs[0]) for seqs in sequences]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        if batch.prompts is not None:
            self._candidates.update(self.answer_prompts(batch))
            return
        captions = self.generate_captions(batch.images)
        self._candidates.update(zip(batch.image_ids.tolist(), captions, strict=True))

    @torch.no_grad()
    def answer_prompts(self, batch: Batch) -> dict[str, str]:
        """A batch of a store with prompts: the caption continuing each (image, prompt) pair, by its pair key."""
        from mmtrain.data.prompts import pair_key
        from mmtrain.models.generation import generate_prompted

        ids = [[tuple(self.tokenizer.tokens(p)) if p else () for p in own] for own in batch.prompts]
        sequences = generate_prompted(self.inference_captioner, self.normalize(batch.images), ids, self.decoding)
        return {
            pair_key(image_id, index): self.tokenizer.decode(seqs[0])
            for image_id, per_prompt in zip(batch.image_ids.tolist(), sequences, strict=True)
            for index, seqs in enumerate(per_prompt)
        }

    def on_validation_epoch_start(self) -> None:
        self._candidates = {}

    def on_validation_epoch_end(self) -> None:
        from mmtrain.training.validation import gather_candidates, validation_metrics

        # Every rank scores the whole split's captions, so all ranks log (and pick the best checkpoint by) one value.
        metrics = validation_metrics(gather_candidates(self._candidates), self.references, self.scenes)
        for name, value in metrics.items():
            prog_bar = name in ("CIDEr", "scene_accuracy")
            self.log(f"val/{name}", value, prog_bar=prog_bar, sync_dist=True, reduce_fx="max")  # equal on all ranks

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.optim
        optimizer = build_optimizer(
            self.captioner,
            lr=o["lr"],
            encoder_lr=o.get("encoder_lr"),
            weight_decay=o["weight_decay"],
            betas=o.get("betas", (0.9, 0.999)),
        )
        schedule = functools.partial(
            warmup_cosine,
            warmup_steps=o["warmup_steps"],
            total_steps=self.total_steps,
            min_ratio=o.get("min_lr_ratio", 0.0),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mmtrain"] = {
            "model_config": self.model_config,
            "tokenizer": torch.frombuffer(bytearray(self.tokenizer.model_bytes), dtype=torch.uint8).clone(),
            "decoding": dict(self.decoding.__dict__),
            "extra": {**self.extra, "objective": getattr(self.objective, "name", "xe")},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resume across a change of ``ema.decay``: start the average from the saved weights, or drop it."""
        state = checkpoint["state_dict"]
        saved = [k for k in state if k.startswith("ema.")]
        if self.ema is not None and not saved:
            log.warning("the checkpoint has no EMA weights: the average starts from its weights")
            n = len("captioner.")
            state.update({f"ema.model.{k[n:]}": v for k, v in list(state.items()) if k.startswith("captioner.")})
            state["ema._extra_state"] = {"step": int(checkpoint.get("global_step", 0))}
        elif self.ema is None and saved:
            log.warning("ema.decay is null: the checkpoint's EMA weights are not used")
            for key in saved:
                del state[key]
