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
import random
import re
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from mmtrain.data.loader import resolve_workers
from mmtrain.data.remote import is_url, mirror_store, split_source
from mmtrain.data.store import item_image, open_split, require_store
from mmtrain.errors import UserError
from mmtrain.tokens import PAD_ID, HFTokenizer, Tokenizer


@dataclass
class Batch:
    """A training or evaluation batch.

    Attributes:
        images: uint8 images (B, 3, H, W); the model normalises them. None when ``features`` are given.
        image_ids: (B,) ids.
        input_ids: (B*C, T) token ids, C captions per image in consecutive rows; None at eval.
        captions_per_image: C.
        caption_pool: every caption's token ids, per image (training only).
        features: the frozen encoder's cached tokens (B, N, D) in fp16, when training from a feature cache.
        mirrored_pool: ``caption_pool`` with left and right swapped, for horizontally flipped images (training
            with ``hflip`` only).
        targets: (B*C, T) True where ``input_ids`` holds a token the loss predicts: after bos and the prompt, up to
            and including eos (not the padding, whose id may be eos's).
        prompt_len: prompt tokens after bos in every caption row (no loss on them).
    """

    images: Tensor | None
    image_ids: Tensor
    input_ids: Tensor | None = None
    captions_per_image: int = 1
    caption_pool: list[list[list[int]]] | None = None
    features: Tensor | None = None
    mirrored_pool: list[list[list[int]]] | None = None
    targets: Tensor | None = None
    prompt_len: int = 0

    def to(self, device: torch.device) -> Batch:
        move = (lambda t: t.to(device, non_blocking=True)) if device.type != "cpu" else (lambda t: t)
        tensors = (self.images, self.input_ids, self.features, self.targets)
        images, ids, features, targets = (None if t is None else move(t) for t in tensors)
        return Batch(images, move(self.image_ids), ids, self.captions_per_image, features=features, targets=targets)

    def pin_memory(self) -> Batch:
        """The batch with its tensors in page-locked memory (a loader with ``pin_memory`` calls this)."""
        images, ids, features = (
            None if t is None else t.pin_memory() for t in (self.images, self.image_ids, self.features)
        )
        return replace(self, images=images, image_ids=ids, features=features)

    def choose_captions(self, count: int, seed: int, hflip: float = 0.0, pad_id: int = PAD_ID) -> Batch:
        """Pick ``count`` captions per image from the pool with a generator seeded by ``seed``; pad them.

        With ``hflip`` > 0 each image is first mirrored left-right with that probability (same generator) and then
        gets its captions from ``mirrored_pool``. Cached encoder tokens cannot be mirrored, so they never are.
        """
        rng = random.Random(seed)
        pools, images = self.caption_pool, self.images
        if hflip > 0 and images is not None and self.mirrored_pool is not None:
            flips = [rng.random() < hflip for _ in pools]
            pools = [m if f else p for f, p, m in zip(flips, pools, self.mirrored_pool, strict=True)]
            mask = torch.tensor(flips)
            if mask.any():
                images = images.clone()
                images[mask] = images[mask].flip(-1)
        rows = [rng.sample(pool, count) if len(pool) >= count else rng.choices(pool, k=count) for pool in pools]
        flat = [ids for image_rows in rows for ids in image_rows]
        input_ids = torch.full((len(flat), max(map(len, flat))), pad_id, dtype=torch.long)
        targets = torch.zeros_like(input_ids, dtype=torch.bool)
        for i, ids in enumerate(flat):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            targets[i, 1 + self.prompt_len : len(ids)] = True
        return replace(
            self,
            images=images,
            input_ids=input_ids,
            captions_per_image=count,
            caption_pool=None,
            mirrored_pool=None,
            targets=targets,
        )


class CaptionDataset:
    """A store split read in store order (training shuffles by index in its loader), and how to batch it.

    Args:
        source: the split's folder, or LitData's ``Dir(cache, URL)`` for a remote store.
        tokenizer: tokenizes the captions into the batch's caption pool; None at evaluation (no captions).
        captions: captions per image per training step.
        max_len: token ids per caption.
        mirror: word swaps for left-right mirrored images (training with ``hflip``); None: no mirrored pool.
        prompt: token ids placed after bos in every caption (no loss on them).
    """

    def __init__(
        self,
        source,
        tokenizer: Tokenizer | HFTokenizer | None = None,
        *,
        captions: int = 1,
        max_len: int = 32,
        mirror: dict[str, str] | None = None,
        prompt: tuple[int, ...] = (),
    ) -> None:
        self.stream = open_split(source)
        self.tokenizer, self.captions, self.max_len, self.mirror = tokenizer, captions, max_len, mirror
        self.prompt = list(prompt)

    def encode(self, caption: str) -> list[int]:
        """bos, the prompt, the caption's tokens and eos; the caption cut to ``max_len`` ids with bos and eos."""
        ids = self.tokenizer.encode(caption, max_len=self.max_len)
        return ids[:1] + self.prompt + ids[1:]


def mirror_caption(caption: str, swaps: dict[str, str]) -> str:
    """``caption`` as it reads for the left-right mirrored image: whole words swapped by ``swaps``, case kept."""
    if not swaps:
        return caption
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(swaps, key=len, reverse=True))) + r")\b", re.I)

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        out = swaps.get(word.lower(), word)
        return out.capitalize() if word[:1].isupper() else out

    return pattern.sub(swap, caption)


def _stack(items: list[dict], key: str) -> Tensor | None:
    if key not in items[0]:
        return None
    arrays = [item_image(item) for item in items] if key == "image" else [item[key] for item in items]
    return torch.from_numpy(np.stack(arrays))  # JPEG images are decoded here: in the loader's workers, if any


def collate(items: list[dict], dataset: CaptionDataset) -> Batch:
    """Stack images as uint8 (B, 3, H, W) (or cached encoder tokens (B, N, D)); tokenize every caption (training)."""
    images = _stack(items, "image")  # (B, H, W, 3)
    images = None if images is None else images.permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W)
    image_ids = torch.tensor([int(item["image_id"]) for item in items])
    features = _stack(items, "features")  # (B, N, D) fp16
    if dataset.tokenizer is None:
        return Batch(images, image_ids, features=features)
    encode = dataset.encode
    texts = [json.loads(item["captions"]) for item in items]
    pool = [[encode(c) for c in captions] for captions in texts]
    mirrored = None
    if dataset.mirror is not None and images is not None:
        swaps = dataset.mirror
        mirrored = [[encode(mirror_caption(c, swaps)) for c in cs] for cs in texts]
    return Batch(
        images,
        image_ids,
        None,
        dataset.captions,
        caption_pool=pool,
        features=features,
        mirrored_pool=mirrored,
        prompt_len=len(dataset.prompt),
    )


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
        prompt: text after bos in every training caption, without loss (``prompt=`` of fit).
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
