"""Vision-language towers: CLIP and SigLIP normalise as their pretrained configs say, and ``encoder.layer`` returns an
intermediate block's tokens, as timm's ``forward_intermediates`` does. No weights are loaded."""

from __future__ import annotations

import logging

import pytest
import torch

from mmtrain.errors import UserError
from mmtrain.models.encoders import TimmEncoder

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ONE_BLOCK = {"depth": 1}
TINY_VIT = {"depth": 3, "embed_dim": 16, "num_heads": 2, "patch_size": 8}


@pytest.mark.parametrize(
    ("model_name", "mean", "std"),
    [
        ("vit_base_patch32_clip_quickgelu_224.openai", CLIP_MEAN, CLIP_STD),
        ("vit_base_patch32_clip_224.openai", CLIP_MEAN, CLIP_STD),
        ("vit_base_patch16_siglip_224.v2_webli", (0.5,) * 3, (0.5,) * 3),
        ("vit_tiny_patch16_224", (0.5,) * 3, (0.5,) * 3),  # timm's augreg ViTs also use 0.5
        ("resnet18", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's, as before
    ],
)
def test_pixels_are_normalised_as_the_pretrained_config_says(model_name, mean, std):
    kwargs = {"depth": 1} if "vit" in model_name else {"layers": [1, 1, 1, 1]}
    encoder = TimmEncoder(model_name=model_name, img_size=32, model_kwargs=kwargs)
    assert encoder.data_config["mean"] == pytest.approx(mean) and encoder.data_config["std"] == pytest.approx(std)
    white, black = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8), torch.zeros((1, 3, 2, 2), dtype=torch.uint8)
    expected_white = [(1 - m) / s for m, s in zip(mean, std, strict=True)]
    assert encoder.normalize(white)[0, :, 0, 0].tolist() == pytest.approx(expected_white, rel=1e-5)
    assert encoder.normalize(black)[0, :, 0, 0].tolist() == pytest.approx(
        [-m / s for m, s in zip(mean, std, strict=True)]
    )


@pytest.mark.parametrize(
    ("model_name", "size", "tokens"),
    [
        ("vit_base_patch32_clip_quickgelu_224.openai", 224, 1 + 7 * 7),  # a class token and 7x7 patches
        ("vit_base_patch16_siglip_384.v2_webli", 384, 24 * 24),  # no class token
    ],
)
def test_without_img_size_a_tower_is_built_for_its_pretrained_input_size(model_name, size, tokens):
    encoder = TimmEncoder(model_name=model_name, img_size=None, model_kwargs=ONE_BLOCK)
    assert (encoder.img_size, encoder.num_tokens, encoder.out_dim) == (size, tokens, 768)


def test_openai_clip_under_its_gelu_name_warns_with_the_quickgelu_name(caplog):
    with caplog.at_level(logging.WARNING, logger="mmtrain.models.encoders"):
        TimmEncoder(model_name="vit_base_patch32_clip_224.openai", img_size=32, model_kwargs=ONE_BLOCK)
        assert "vit_base_patch32_clip_quickgelu_224.openai" in caplog.text
        caplog.clear()
        TimmEncoder(model_name="vit_base_patch32_clip_quickgelu_224.openai", img_size=32, model_kwargs=ONE_BLOCK)
        assert "QuickGELU" not in caplog.text


def _pair(model_name: str, layer: int, **kwargs) -> tuple[TimmEncoder, TimmEncoder]:
    """The same weights twice: the whole model (layer -1), and one cut after ``layer``."""
    torch.manual_seed(0)
    full = TimmEncoder(model_name=model_name, layer=-1, **kwargs).eval()
    torch.manual_seed(0)
    cut = TimmEncoder(model_name=model_name, layer=layer, **kwargs).eval()
    return full, cut


def test_layer_minus_two_is_the_penultimate_block_as_timm_returns_it():
    full, cut = _pair("vit_tiny_patch16_224", -2, img_size=32, model_kwargs=TINY_VIT)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        [(patches, prefix)] = full.model.forward_intermediates(
            x, indices=[-2], norm=False, intermediates_only=True, output_fmt="NLC", return_prefix_tokens=True
        )
        tokens = cut(x)  # (B, 1 + 4*4, 16)
        assert not torch.allclose(tokens, full(x))  # not the last block's output
    assert tokens.shape == (2, 17, 16) and (cut.num_tokens, cut.out_dim) == (17, 16)
    assert torch.allclose(tokens, torch.cat([prefix, patches], dim=1), atol=1e-6)
    assert len(cut.model.blocks) == 2  # the last block is gone: no compute, no parameters in the state dict
    assert not any(k.startswith(("blocks.2.", "norm.")) for k in cut.model.state_dict())


def test_a_cnn_layer_is_a_stage_and_its_grid_is_flattened():
    full, cut = _pair("resnet18", -2, img_size=64, model_kwargs={"layers": [1, 1, 1, 1]})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        [grid] = full.model.forward_intermediates(x, indices=[-2], intermediates_only=True)  # (B, 256, 4, 4)
        assert torch.allclose(cut(x), grid.flatten(2).transpose(1, 2), atol=1e-6)
    assert (cut.num_tokens, cut.out_dim) == (16, 256)


def test_freezing_the_last_blocks_counts_from_the_chosen_layer():
    encoder = TimmEncoder(model_name="vit_tiny_patch16_224", img_size=32, model_kwargs=TINY_VIT, layer=-2, freeze=1)
    trainable = {name.split(".")[1] for name, p in encoder.model.named_parameters() if p.requires_grad}
    assert trainable == {"1"}  # blocks.1, the last one kept


def test_a_layer_out_of_range_is_one_line():
    with pytest.raises(UserError, match=r"encoder.layer=-9 for vit_tiny_patch16_224"):
        TimmEncoder(model_name="vit_tiny_patch16_224", img_size=32, model_kwargs=TINY_VIT, layer=-9)


def test_a_cut_tower_has_a_feature_cache_key_of_its_own():
    """The cache key holds a hash of the encoder's weights; a cut tower has fewer, so it never reads the whole
    tower's cached tokens (or the reverse)."""
    from mmtrain.training.features import feature_key

    manifest = {"resize": {"size": 32, "mode": "center_crop"}, "splits": {"train": {"checksum": "x"}}}
    full, cut = _pair("vit_tiny_patch16_224", -2, img_size=32, model_kwargs=TINY_VIT)
    keys = [feature_key(encoder, manifest) for encoder in (full, cut)]
    assert keys[0]["weights_sha256"] != keys[1]["weights_sha256"]
