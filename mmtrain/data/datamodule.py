"""Batches from the store: a LightningDataModule over LitData streaming datasets.

Training reads ``OUT/train`` through :class:`~mmtrain.data.loader.StepResumableLoader` (a seeded shuffle positioned
by the global step). Batches carry every caption of their images; just before the
batch goes to the device, ``captions_per_image`` of them are chosen with a generator seeded from (seed, global step),
so a resumed run picks exactly what an uninterrupted one would. Validation and test stream in order through LitData's
``StreamingDataLoader``.

With a feature cache (see :mod:`mmtrain.training.features`), training reads the cached encoder tokens of each image
instead of its pixels; validation and test always read pixels, so their captions are the ones ``eval`` gives.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch

from mmtrain.data.batch import Batch, CaptionDataset, collate, mirror_caption
from mmtrain.data.loader import resolve_workers
from mmtrain.data.remote import is_url, mirror_store, split_source
from mmtrain.data.store import require_store
from mmtrain.errors import UserError
from mmtrain.tokens import HFTokenizer, Tokenizer

__all__ = ["Batch", "CaptionDataModule", "CaptionDataset", "collate", "mirror_caption"]


class CaptionDataModule(pl.LightningDataModule):
    """Loaders over a preprocessed store.

    Args:
        store: folder written by ``mmtrain preprocess``, or that folder uploaded whole to ``s3://``, ``gs://`` or
            ``azure://`` (read through LitData; see :mod:`mmtrain.data.remote`).
        batch_size: images per batch (each with ``captions_per_image`` captions in training).
        captions_per_image: captions per image per training step.
        max_caption_len: token ids per caption, bos and eos included.
        num_workers: processes that read, decode (JPEG stores) and tokenize batches, for training and evaluation;
            0 reads in the training process (enough for small raw images), ``auto`` uses one per core.
        seed: shuffle seed.
        eval_batch_size: images per batch in validation and test.
        cache_dir: for a store URL, where its small files and streamed chunks are cached (default
            ``$MMTRAIN_CACHE/stores`` or ``~/.cache/mmtrain/stores``).
        hflip: probability of mirroring a training image left-right; its captions then get the words in
            ``mirror_words`` swapped ("left" <-> "right"), so they still describe it. Not applied to cached encoder
            tokens. Only for data whose captions stay true when mirrored apart from those words.
        mirror_words: the word swaps for mirrored images.
        tokenizer: a Hugging Face tokenizer's hub name or folder (``decoder=hf_causal_lm`` sets its
            ``name_or_path``); None: the store's SentencePiece ``tokenizer.model``. The store keeps captions as text,
            so one store serves both.
        prompt: text after bos in every training caption, without loss (``prompt=`` of fit). Not with a store
            that has per-sample prompts (``has_prompts``), which each caption then gets instead.
    """

    def __init__(
        self,
        *,
        store: str,
        batch_size: int = 64,
        captions_per_image: int = 1,
        max_caption_len: int = 32,
        num_workers: int | str = 0,
        seed: int = 0,
        eval_batch_size: int = 128,
        cache_dir: str | None = None,
        hflip: float = 0.0,
        mirror_words: dict[str, str] | None = None,
        tokenizer: str | None = None,
        prompt: str | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(hflip) <= 1.0:
            raise UserError(f"datamodule.hflip must be a probability in [0, 1], got {hflip}")
        self.hflip = float(hflip)
        self.mirror_words = {str(k).lower(): str(v) for k, v in (mirror_words or {}).items()}
        self.url = str(store).rstrip("/") if is_url(store) else None
        self.store, self.manifest = require_store(mirror_store(self.url, cache_dir) if self.url else store)
        self.tokenizer = HFTokenizer(tokenizer) if tokenizer else Tokenizer(self.store / "tokenizer.model")
        self.prompt = str(prompt or "")
        self.has_prompts = bool(self.manifest.get("prompts"))  # each caption has its own prompt (a data column)
        if self.has_prompts and self.prompt:
            raise UserError(
                f"prompt={self.prompt!r}: {store} gives every caption its own prompt from a data column; "
                "a fixed prompt cannot be added to them: drop prompt="
            )
        self.prompt_ids = tuple(self.tokenizer.tokens(self.prompt)) if self.prompt else ()
        self.batch_size, self.captions, self.max_len = batch_size, captions_per_image, max_caption_len
        self.num_workers = resolve_workers(num_workers, key="datamodule.num_workers")
        self.seed, self.eval_batch_size = seed, eval_batch_size
        self.train_dir = self.store / "train"

    def use_feature_cache(self, cache_dir: Path) -> None:
        """Train on the cached encoder tokens in ``cache_dir`` (``STORE/features/KEY``) instead of the images."""
        self.train_dir = cache_dir / "train"

    @property
    def location(self) -> str:
        """The store as a user names it again: its URL, or the absolute path of the folder."""
        return self.url or str(self.store.resolve())

    def _source(self, split_dir: Path):
        """What LitData reads for ``split_dir``: the folder, or for a remote store its URL cached in that folder."""
        if self.url is None:
            return split_dir
        return split_source(self.url, self.store, split_dir.relative_to(self.store).as_posix())

    def on_before_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Choose this step's captions, seeded by (seed, global step): identical after a resume."""
        if batch.caption_pool is None:
            return batch
        step = self.trainer.global_step if self.trainer is not None else 0
        seed = self.seed * 1_000_003 + step
        return batch.choose_captions(self.captions, seed=seed, hflip=self.hflip, pad_id=self.tokenizer.pad_id)

    def references(self, split: str) -> dict[int, list[str]]:
        """Raw reference captions of ``split`` by image id, for metrics."""
        from mmtrain.metrics.coco_files import load_references

        return load_references(self.store / f"references_{split}.json")

    def _loader(self, split: str):
        """An evaluation loader: images and ids of ``split`` in store order, no captions."""
        from litdata import StreamingDataLoader

        dataset = CaptionDataset(self._source(self.store / split))
        return StreamingDataLoader(
            dataset.stream,
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
            collate_fn=partial(collate, dataset=dataset),
            drop_last=False,
            pin_memory=self._on_gpu(),
            generator=torch.Generator(),  # workers' seeds not drawn from the training RNG, which a resume restores
        )

    def train_dataloader(self):
        from mmtrain.data.loader import StepResumableLoader

        dataset = CaptionDataset(
            self._source(self.train_dir),
            self.tokenizer,
            captions=self.captions,
            max_len=self.max_len,
            mirror=self.mirror_words if self.hflip > 0 else None,
            prompt=self.prompt_ids,
        )
        return StepResumableLoader(
            dataset.stream,
            batch_size=self.batch_size,
            collate_fn=partial(collate, dataset=dataset),
            seed=self.seed,
            consumed=self._batches_consumed,
            rank_world=self._rank_world,
            chunk_sizes=self._chunk_sizes(self.train_dir),
            num_workers=self.num_workers,
            pin_memory=self._on_gpu(),
        )

    def _on_gpu(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _chunk_sizes(self, split_dir: Path) -> list[int] | None:
        index = split_dir / "index.json"
        if not index.is_file():
            return None
        return [int(chunk["chunk_size"]) for chunk in json.loads(index.read_text(encoding="utf-8"))["chunks"]]

    def _batches_consumed(self) -> int:
        trainer = self.trainer
        return 0 if trainer is None else trainer.global_step * int(trainer.accumulate_grad_batches)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (0, 1) if trainer is None else (int(trainer.global_rank), int(trainer.world_size))

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def loader(self, split: str):
        """An evaluation loader for any split."""
        return self._loader(split)
