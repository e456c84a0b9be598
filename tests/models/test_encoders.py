"""Whether an encoder is built for one input size is decided from the timm model, not from its name."""

from __future__ import annotations

import pytest
import torch

from mmtrain.models.encoders import TimmEncoder, _create, fixed_input_size

SWIN = {"depths": (1, 1), "num_heads": (1, 2), "embed_dim": 16, "window_size": 4}


@pytest.mark.parametrize(
    ("model_name", "fixed"),
    [
        ("vit_tiny_patch16_224", True),  # ViT: position embeddings for a 14x14 grid
        ("deit_tiny_patch16_224", True),
        ("eva02_tiny_patch14_224", True),
        ("swin_tiny_patch4_window7_224", True),  # no "vit" in its name, a patch grid all the same
        ("levit_128s", True),  # attention biases for one resolution
        ("fastvit_t8", False),  # "vit" in its name, but convolutional: any size
        ("resnet18", False),
    ],
)
def test_the_input_size_is_decided_from_the_built_model(model_name, fixed):
    assert fixed_input_size(_create(model_name, device="meta")) is fixed


def test_a_vit_named_cnn_and_a_swin_build_at_the_asked_size():
    """FastViT refused ``img_size`` when it was given to every name with "vit" in it, and a Swin, which was not
    given it, refused 64 px images; both now give the token grid of a 64 px input."""
    torch.manual_seed(0)
    swin = TimmEncoder(model_name="swin_tiny_patch4_window7_224", img_size=64, model_kwargs=SWIN)
    assert (swin.num_tokens, swin.out_dim) == (64, 32)  # 64 / 4 / 2 = 8 x 8 tokens of the second stage's 32 channels
    assert swin(torch.randn(2, 3, 64, 64)).shape == (2, 64, 32)
    fastvit = TimmEncoder(model_name="fastvit_t8", img_size=64)
    assert fastvit.num_tokens == 4  # a 2x2 grid: 64 px / 32
    vit = TimmEncoder(
        model_name="vit_tiny_patch16_224", img_size=32, model_kwargs={"depth": 1, "embed_dim": 16, "num_heads": 2}
    )
    assert vit.num_tokens == 5  # a class token and 2x2 patches
