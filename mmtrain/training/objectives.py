"""Training objectives: cross-entropy, cross-entropy + contrastive (ITC), and self-critical sequence training.

An objective is called with the LightningModule and a batch and returns the loss plus named values to log.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmtrain.tokens import PAD_ID


def image_inputs(module, batch) -> dict[str, Tensor | None]:
    """The captioner's image arguments for ``batch``: normalised pixels, or a feature cache's encoder tokens."""
    if batch.features is not None:
        return {"images": None, "tokens": batch.features}
    return {"images": module.normalize(batch.images), "tokens": None}


def _xe(module, batch, label_smoothing: float):
    ids = batch.input_ids  # (B*C, T)
    out = module.captioner(
        input_ids=ids[:, :-1], captions_per_image=batch.captions_per_image, **image_inputs(module, batch)
    )
    logits = out.logits
    keep = batch.targets[:, 1:] if batch.targets is not None else ids[:, 1:] != PAD_ID  # (B*C, T-1)
    targets = ids[:, 1:].masked_fill(~keep, -100)  # no loss on the prompt and the padding
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=-100,
        label_smoothing=label_smoothing,
    )
    return loss, out


class CrossEntropy:
    """Teacher-forced cross-entropy with label smoothing."""

    name = "xe"

    def __init__(self, *, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        loss, _ = _xe(module, batch, self.label_smoothing)
        return loss, {"xe": loss.detach()}


class JointContrastive(CrossEntropy):
    """Cross-entropy plus ``itc_weight`` times a symmetric image-text InfoNCE loss (needs ``model.contrastive``)."""

    name = "xe_itc"

    def __init__(self, *, label_smoothing: float = 0.0, itc_weight: float = 0.5) -> None:
        super().__init__(label_smoothing=label_smoothing)
        self.itc_weight = itc_weight

    def __call__(self, module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        head = module.captioner.contrastive
        if head is None:
            raise ValueError("objective=xe_itc needs a contrastive head (model.contrastive)")
        xe, out = _xe(module, batch, self.label_smoothing)
        text_emb = module.captioner.embed_texts(batch.input_ids[:: batch.captions_per_image])  # first caption each
        itc = head.loss(out.image_emb, text_emb)
        return xe + self.itc_weight * itc, {
            "xe": xe.detach(),
            "itc": itc.detach(),
            "temperature": 1 / head.logit_scale.exp().detach(),
        }


class SelfCritical:
    """SCST: sample ``num_samples`` captions per image, reward = CIDEr-D against the image's training references.

    The baseline is the greedy caption's reward (``baseline=greedy``) or the mean reward of the other samples of the
    same image (``baseline=mean``). CIDEr-D takes its document frequencies from the training references.
    """

    name = "scst"

    def __init__(self, *, num_samples: int = 5, baseline: str = "greedy", max_len: int = 30, temperature: float = 1.0):
        if baseline not in ("greedy", "mean"):
            raise ValueError(f"objective.baseline must be 'greedy' or 'mean', got {baseline!r}")
        self.k, self.baseline, self.max_len, self.temperature = num_samples, baseline, max_len, temperature
        self.scorer = None
        self.references: dict[int, list[str]] = {}

    def setup(self, train_references: dict[int, list[str]]) -> None:
        """Tokenize the training references once and build the CIDEr-D document frequencies from them."""
        from mmtrain.metrics.cider import CiderD
        from mmtrain.metrics.tokenize import ptb_tokenize

        self.references = {i: [" ".join(ptb_tokenize(c)) for c in refs] for i, refs in train_references.items()}
        self.scorer = CiderD.from_references(self.references.values())

    def rewards(self, captions: list[str], image_ids: list[int]) -> Tensor:
        from mmtrain.metrics.tokenize import ptb_tokenize

        candidates = [" ".join(ptb_tokenize(c)) for c in captions]
        return torch.as_tensor(self.scorer.score_batch(candidates, [self.references[i] for i in image_ids]))

    def __call__(self, module, batch) -> tuple[Tensor, dict[str, Any]]:
        from mmtrain.models.generation import DecodingConfig, decode, sample_with_logprobs

        captioner, tokenizer = module.captioner, module.tokenizer
        inputs = image_inputs(module, batch)
        image_ids = batch.image_ids.tolist()
        fused = captioner.encode(**inputs)
        tokens, logprobs, mask = sample_with_logprobs(
            captioner, fused, len(image_ids), self.k, self.max_len, self.temperature
        )
        sampled = [tokenizer.decode(row) for row in tokens.tolist()]
        reward = self.rewards(sampled, [i for i in image_ids for _ in range(self.k)]).view(-1, self.k).float()  # (B, K)
        if self.baseline == "greedy":
            with torch.no_grad():
                captioner.eval()
                greedy = decode(
                    captioner, captioner.encode(**inputs), len(image_ids), DecodingConfig(max_len=self.max_len)
                )
                captioner.train()
            base = self.rewards([tokenizer.decode(s[0]) for s in greedy], image_ids).float()[:, None]  # (B, 1)
        else:
            base = (reward.sum(1, keepdim=True) - reward) / max(1, self.k - 1)
        advantage = (reward - base).to(logprobs.device).view(-1, 1)  # (B*K, 1)
        loss = -(advantage * logprobs * mask).sum() / mask.sum().clamp(min=1)
        return loss, {"reward": reward.mean(), "baseline": base.mean(), "advantage": advantage.mean()}
