"""Objectives on a tiny model: cross-entropy, joint contrastive, and SCST's policy gradient."""

from __future__ import annotations

import functools

import pytest
import torch

from mmtrain.data.datamodule import Batch
from mmtrain.models.contrastive import ContrastiveHead
from mmtrain.tokens import BOS_ID, EOS_ID
from mmtrain.training.module import CaptionModule
from mmtrain.training.objectives import CrossEntropy, JointContrastive, SelfCritical
from tests.models.test_generation import tiny_captioner


class _Tokenizer:
    """Decodes ids as words w<id>, enough for rewards over fake references."""

    model_bytes = b""

    def decode(self, ids):
        words = []
        for token in ids:
            if token == EOS_ID:
                break
            if token > EOS_ID:
                words.append(f"w{token}")
        return " ".join(words)


def tiny_module(objective, contrastive: bool = False) -> CaptionModule:
    captioner = tiny_captioner()
    if contrastive:
        captioner.contrastive = functools.partial(ContrastiveHead, embed_dim=16)(image_dim=32, text_dim=32)
    return CaptionModule(
        captioner=captioner, tokenizer=_Tokenizer(), model_config={}, optim={}, total_steps=10, objective=objective
    )


def tiny_batch(images: int = 4, captions: int = 2) -> Batch:
    torch.manual_seed(1)
    ids = torch.randint(4, 40, (images * captions, 6))
    ids[:, 0], ids[:, -1] = BOS_ID, EOS_ID
    return Batch(torch.randint(0, 255, (images, 3, 32, 32), dtype=torch.uint8), torch.arange(images), ids, captions)


def test_cross_entropy_decreases_with_training():
    module = tiny_module(CrossEntropy(label_smoothing=0.1))
    batch = tiny_batch()
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    first, _ = module.objective(module, batch)
    for _ in range(30):
        loss, _ = module.objective(module, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.5 * first.item()


def test_joint_contrastive_aligns_matching_pairs():
    module = tiny_module(JointContrastive(itc_weight=1.0), contrastive=True)
    batch = tiny_batch(images=6, captions=1)
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    for _ in range(60):
        loss, parts = module.objective(module, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        images = module.captioner.embed_images(module.normalize(batch.images))
        texts = module.captioner.embed_texts(batch.input_ids)
    assert (images @ texts.T).argmax(dim=1).tolist() == list(range(6))
    assert set(parts) == {"xe", "itc", "temperature"}


def test_joint_contrastive_needs_a_head():
    module = tiny_module(JointContrastive())
    with pytest.raises(ValueError, match="contrastive head"):
        module.objective(module, tiny_batch())


@pytest.mark.parametrize("baseline", ["greedy", "mean"])
def test_scst_raises_the_reward_of_a_rewarded_caption(baseline):
    """Image i's references repeat the word w(7+i); after SCST steps the samples earn more CIDEr-D."""
    torch.manual_seed(0)
    objective = SelfCritical(num_samples=6, baseline=baseline, max_len=4)
    references = {i: [f"w{7 + i} w{7 + i} w{7 + i}", f"w{7 + i} w{7 + i}"] for i in range(4)}
    objective.setup(references)
    module = tiny_module(objective).train()
    batch = tiny_batch(captions=1)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    rewards = []
    for _ in range(20):
        loss, parts = objective(module, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        rewards.append(float(parts["reward"]))
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.1


def test_scst_rejects_unknown_baseline():
    with pytest.raises(ValueError, match="baseline"):
        SelfCritical(baseline="median")
