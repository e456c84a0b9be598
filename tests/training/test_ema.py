"""Exponential moving average of the weights: the average itself, what decodes with it, what loads it."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from mmtrain.models.generation import DecodingConfig
from mmtrain.models.loading import checkpoint_weights
from mmtrain.training.ema import WeightEMA
from mmtrain.training.module import CaptionModule
from tests.models.test_generation import tiny_captioner
from tests.training.test_objectives import _Tokenizer, tiny_batch

OPTIM = {"lr": 1e-2, "encoder_lr": None, "weight_decay": 0.0, "warmup_steps": 0}
DECAY = 0.5


class _Snapshots(pl.Callback):
    """The captioner's weights before training and after every optimizer step."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def _take(self, module: CaptionModule) -> None:
        self.weights.append({k: v.detach().clone() for k, v in module.captioner.state_dict().items()})

    def on_train_start(self, trainer, module) -> None:
        self._take(module)

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self._take(module)


def _module(ema: bool) -> CaptionModule:
    captioner = tiny_captioner()
    return CaptionModule(
        captioner=captioner,
        tokenizer=_Tokenizer(),
        model_config={},
        optim=OPTIM,
        total_steps=3,
        decoding=DecodingConfig(max_len=6),
        ema=WeightEMA(captioner, decay=DECAY, start_step=1) if ema else None,
    )


@pytest.fixture(scope="module")
def trained() -> tuple[CaptionModule, list[dict[str, torch.Tensor]]]:
    """A 3-step run with ``ema.decay=0.5, ema.start_step=1`` and the raw weights at every step."""
    module, snapshots = _module(ema=True).train(), _Snapshots()
    trainer = pl.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[snapshots],
    )
    batches = DataLoader([tiny_batch() for _ in range(3)], batch_size=None)  # batch_size=None: items are batches
    trainer.fit(module, train_dataloaders=batches)
    return module, snapshots.weights


def test_ema_equals_a_hand_computed_average(trained):
    module, weights = trained
    assert len(weights) == 4 and module.ema.step == 3
    expected = dict(weights[1])  # steps up to start_step take the weights as they are
    for step_weights in weights[2:]:
        expected = {k: DECAY * v + (1 - DECAY) * step_weights[k] for k, v in expected.items()}
    averaged = module.ema.model.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(averaged[name], value, rtol=1e-5, atol=1e-6, msg=name)
    raw = module.captioner.state_dict()
    moved = max((averaged[k] - raw[k]).abs().max().item() for k in raw)
    assert moved > 1e-3, "the EMA weights should lag behind the trained ones"


def test_validation_decodes_and_checkpoints_load_the_ema_weights(trained):
    module = copy.deepcopy(trained[0]).eval()
    with torch.no_grad():
        module.ema.model.decoder.embed.weight.mul_(-1.0)  # make the two sets of weights caption differently
    images = tiny_batch().images
    with_ema = module.generate_captions(images)
    raw = [
        _Tokenizer().decode(s[0]) for s in module.captioner.generate(module.normalize(images), config=module.decoding)
    ]
    assert with_ema != raw
    state, kind = checkpoint_weights(module.state_dict())
    assert kind == "ema"
    assert all(torch.equal(state[k], v) for k, v in module.ema.model.state_dict().items())
    assert checkpoint_weights({"captioner.w": torch.ones(1)}) == ({"w": torch.ones(1)}, "raw")


def test_resume_across_switching_ema_on_or_off():
    """A checkpoint without an average resumes with one (started from its weights), and the reverse drops it."""
    plain = {"state_dict": _module(ema=False).state_dict(), "global_step": 7}
    plain["state_dict"]["captioner.decoder.embed.weight"] += 1.0  # trained weights, unlike a fresh model's
    with_ema = _module(ema=True)
    with_ema.on_load_checkpoint(plain)
    with_ema.load_state_dict(plain["state_dict"])
    assert with_ema.ema.step == 7
    assert torch.equal(with_ema.ema.model.decoder.embed.weight, plain["state_dict"]["captioner.decoder.embed.weight"])

    averaged = {"state_dict": with_ema.state_dict(), "global_step": 7}
    without = _module(ema=False)
    without.on_load_checkpoint(averaged)
    without.load_state_dict(averaged["state_dict"])  # strict: no leftover ema.* keys
    assert not any(k.startswith("ema.") for k in averaged["state_dict"])


def test_ema_rejects_a_decay_outside_zero_one():
    with pytest.raises(ValueError, match="ema.decay"):
        WeightEMA(torch.nn.Linear(2, 2), decay=1.0)
