"""A batch and how store items become one: the caption pool, its prompts, and the captions chosen each step."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from mmtrain.data.image_slots import worker_images
from mmtrain.data.prompts import distinct_prompts
from mmtrain.data.store import item_image, open_split
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
        prompt_lens: per-sample prompts' tokens after bos, per image per caption of ``caption_pool`` (then
            ``prompt_len`` is not used); None: every row has ``prompt_len``.
        mirrored_prompt_lens: the same for ``mirrored_pool``.
        prompts: at evaluation in a store with prompts, each image's distinct prompts (text), in first-seen order.
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
    prompt_lens: list[list[int]] | None = None
    mirrored_prompt_lens: list[list[int]] | None = None
    prompts: list[list[str]] | None = None

    def to(self, device: torch.device) -> Batch:
        move = (lambda t: t.to(device, non_blocking=True)) if device.type != "cpu" else (lambda t: t)
        tensors = (self.images, self.input_ids, self.features, self.targets)
        images, ids, features, targets = (None if t is None else move(t) for t in tensors)
        return Batch(
            images,
            move(self.image_ids),
            ids,
            self.captions_per_image,
            features=features,
            targets=targets,
            prompts=self.prompts,
        )

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
        lens = self.prompt_lens or [[self.prompt_len] * len(pool) for pool in pools]
        if hflip > 0 and images is not None and self.mirrored_pool is not None:
            flips = [rng.random() < hflip for _ in pools]
            pools = [m if f else p for f, p, m in zip(flips, pools, self.mirrored_pool, strict=True)]
            if self.mirrored_prompt_lens is not None:
                lens = [m if f else p for f, p, m in zip(flips, lens, self.mirrored_prompt_lens, strict=True)]
            mask = torch.tensor(flips)
            if mask.any():
                images = images.clone()
                images[mask] = images[mask].flip(-1)
        # Indices are drawn exactly as the captions themselves were (random.sample/choices only use the length).
        picks = [
            rng.sample(range(len(p)), count) if len(p) >= count else rng.choices(range(len(p)), k=count) for p in pools
        ]
        flat = [(pool[j], plens[j]) for pool, plens, rows in zip(pools, lens, picks, strict=True) for j in rows]
        # Filled in numpy: on the training process's critical path, as cheap as a few row copies (torch's per-row
        # tensor and slice calls cost about 0.1 ms an image).
        input_ids = np.full((len(flat), max(len(ids) for ids, _ in flat)), pad_id, dtype=np.int64)
        targets = np.zeros(input_ids.shape, dtype=bool)
        for i, (ids, prompt_len) in enumerate(flat):
            input_ids[i, : len(ids)] = ids
            targets[i, 1 + prompt_len : len(ids)] = True  # no loss on bos and the prompt
        return replace(
            self,
            images=images,
            input_ids=torch.from_numpy(input_ids),
            captions_per_image=count,
            caption_pool=None,
            mirrored_pool=None,
            prompt_lens=None,
            mirrored_prompt_lens=None,
            targets=torch.from_numpy(targets),
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

    def encode(self, caption: str, prompt: list[int] | None = None) -> list[int]:
        """bos, the prompt (this caption's ``prompt`` ids, else the fixed one), the caption's tokens and eos; the
        caption cut to ``max_len`` ids with bos and eos."""
        ids = self.tokenizer.encode(caption, max_len=self.max_len)
        return ids[:1] + (self.prompt if prompt is None else prompt) + ids[1:]


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


def _images(items: list[dict]) -> Tensor | None:
    """The items' images as uint8 (B, 3, H, W), each decoded (JPEG stores: in the loader's workers, if any) straight
    into its place. In a worker the batch is in shared memory (:mod:`mmtrain.data.image_slots`), so handing it to the
    training process copies nothing more."""
    if "image" not in items[0]:
        return None
    first = item_image(items[0])
    shape = (len(items), first.shape[2], *first.shape[:2])
    in_worker = torch.utils.data.get_worker_info() is not None
    images = worker_images(shape) if in_worker else torch.empty(shape, dtype=torch.uint8)
    out = images.numpy()
    out[0] = first.transpose(2, 0, 1)
    for i, item in enumerate(items[1:], start=1):
        out[i] = item_image(item).transpose(2, 0, 1)
    return images


def _features(items: list[dict]) -> Tensor | None:
    return torch.from_numpy(np.stack([item["features"] for item in items])) if "features" in items[0] else None


def _pool(dataset: CaptionDataset, texts: list[list[str]], prompts: list[list[str]] | None, swaps=None):
    """Token ids per image per caption, and with per-sample prompts each one's prompt length (else None)."""
    mirror = (lambda text: mirror_caption(text, swaps)) if swaps is not None else (lambda text: text)
    if prompts is None:
        return [[dataset.encode(mirror(c)) for c in captions] for captions in texts], None
    pool, lens = [], []
    for captions, own in zip(texts, prompts, strict=True):
        tokens = [dataset.tokenizer.tokens(mirror(p)) for p in own]
        pool.append([dataset.encode(mirror(c), t) for c, t in zip(captions, tokens, strict=True)])
        lens.append([len(t) for t in tokens])
    return pool, lens


def collate(items: list[dict], dataset: CaptionDataset) -> Batch:
    """Stack images as uint8 (B, 3, H, W) (or cached encoder tokens (B, N, D)); tokenize every caption (training)."""
    images = _images(items)
    image_ids = torch.tensor([int(item["image_id"]) for item in items])
    features = _features(items)  # (B, N, D) fp16
    prompts = [json.loads(item["prompts"]) for item in items] if "prompts" in items[0] else None
    if dataset.tokenizer is None:
        eval_prompts = None if prompts is None else [distinct_prompts(own) for own in prompts]
        return Batch(images, image_ids, features=features, prompts=eval_prompts)
    texts = [json.loads(item["captions"]) for item in items]
    pool, lens = _pool(dataset, texts, prompts)
    mirrored = mirrored_lens = None
    if dataset.mirror is not None and images is not None:
        mirrored, mirrored_lens = _pool(dataset, texts, prompts, dataset.mirror)
    return Batch(
        images,
        image_ids,
        None,
        dataset.captions,
        caption_pool=pool,
        features=features,
        mirrored_pool=mirrored,
        prompt_len=len(dataset.prompt),
        prompt_lens=lens,
        mirrored_prompt_lens=mirrored_lens,
    )
