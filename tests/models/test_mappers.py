"""ClipCap's mappers and LLaVA's projector: what they read, what they give, their size, and that they train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmtrain.errors import UserError
from mmtrain.models.fusion.clipcap import ClipCapMLP, ClipCapTransformer
from mmtrain.models.fusion.projector import MLPProjector
from tests.conftest import TINY_MODEL


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("mapper", [ClipCapMLP, ClipCapTransformer])
def test_clipcap_mappers_read_the_class_token_of_a_clip_vit(mapper):
    torch.manual_seed(0)
    fusion = mapper(in_dim=32, d_model=16, num_tokens=17, prefix_len=4).eval()  # a class token and 4x4 patches
    tokens = torch.randn(2, 17, 32)
    with torch.no_grad():
        out = fusion(tokens)
        assert out.prefix.shape == (2, 4, 16) and out.memory is None and not out.prefix_bidirectional
        moved = tokens.clone()
        moved[:, 1:] += 1.0  # only the patches change: the global embedding is the class token
        assert torch.equal(fusion(moved).prefix, out.prefix)
        moved[:, 0] += 1.0
        assert not torch.allclose(fusion(moved).prefix, out.prefix)


def test_without_a_class_token_the_global_embedding_is_the_mean():
    torch.manual_seed(0)
    fusion = ClipCapMLP(in_dim=8, d_model=16, num_tokens=16, prefix_len=2).eval()  # SigLIP-like: a 4x4 grid only
    tokens = torch.randn(3, 16, 8)
    with torch.no_grad():
        assert torch.allclose(fusion(tokens).prefix, fusion(tokens.flip(1)).prefix, atol=1e-6)  # order does not matter
        assert not torch.allclose(fusion(tokens).prefix, fusion(tokens[:, :1].expand(-1, 16, -1)).prefix)
    with pytest.raises(UserError, match="fusion.pool=cls needs an encoder with a class token"):
        ClipCapMLP(in_dim=8, d_model=16, num_tokens=16, pool="cls")


def test_the_transformer_mapper_outputs_the_constant_positions():
    """With the constants' part of the stack removed the output would change; the prefix is at positions L..L+K."""
    torch.manual_seed(0)
    fusion = ClipCapTransformer(in_dim=8, d_model=16, num_tokens=5, prefix_len=3, clip_len=2, num_layers=2).eval()
    tokens = torch.randn(2, 5, 8)
    with torch.no_grad():
        projected = fusion.linear(tokens[:, 0]).view(2, 2, 16)
        seq = torch.cat([projected, fusion.prefix_const.expand(2, -1, -1)], dim=1)
        assert torch.allclose(fusion(tokens).prefix, fusion.transformer(seq)[:, 2:])


def test_mapper_sizes_for_clip_vitb32_into_gpt2():
    """Parameter counts at GPT-2's width 768 from timm's CLIP ViT-B/32 tokens (768): the numbers docs/recipes.md
    gives. The transformer mapper's size is mostly its projection to clip_len tokens."""
    with torch.device("meta"):
        mlp = ClipCapMLP(in_dim=768, d_model=768, num_tokens=50, prefix_len=10)
        small = ClipCapTransformer(in_dim=768, d_model=768, num_tokens=50, prefix_len=10, clip_len=10)
        recipe = ClipCapTransformer(in_dim=768, d_model=768, num_tokens=50, prefix_len=40, clip_len=40)
        projector = MLPProjector(in_dim=768, d_model=576, num_tokens=196)  # SigLIP B/16 into SmolLM2-135M
    layer = 4 * 768 * 768 + 4 * 768 + 4 * 768 + 2 * 768 * 1536 + 1536 + 768  # attention, norms, ReLU MLP
    assert count(mlp) == 768 * 3840 + 3840 + 3840 * 7680 + 7680 == 32_451_840
    assert count(small) == 8 * layer + 768 * 7680 + 7680 + 10 * 768 == 43_729_920
    assert count(recipe) == 8 * layer + 768 * 30720 + 30720 + 40 * 768 == 61_470_720
    assert count(projector) == 768 * 576 + 576 + 576 * 576 + 576 == 775_296


def test_the_projector_maps_each_patch_token_on_its_own():
    torch.manual_seed(0)
    fusion = MLPProjector(in_dim=8, d_model=16, num_tokens=17).eval()  # the class token is dropped, as LLaVA does
    tokens = torch.randn(2, 17, 8)
    with torch.no_grad():
        out = fusion(tokens)
        assert out.prefix.shape == (2, 16, 16) and not out.prefix_bidirectional and out.coords.shape == (16, 2)
        moved = tokens.clone()
        moved[:, 6] += 1.0  # patch 5
        changed = (fusion(moved).prefix - out.prefix).abs().sum(dim=(0, 2)) > 0
        assert changed.nonzero().flatten().tolist() == [5]
    assert MLPProjector(in_dim=8, d_model=16, num_tokens=17, class_token=True)(tokens).prefix.shape == (2, 17, 16)
    merged = MLPProjector(in_dim=8, d_model=16, num_tokens=17, merge=2, depth=1)  # nanoVLM: pixel shuffle, a linear
    assert merged(tokens).prefix.shape == (2, 4, 16) and count(merged) == 32 * 16 + 16


FUSIONS = {
    "clipcap_mlp": ["fusion.prefix_len=4"],
    "clipcap_transformer": ["fusion.prefix_len=4", "fusion.clip_len=2", "fusion.num_layers=1", "fusion.num_heads=2"],
    "llava_projector": [],
}


@pytest.mark.parametrize(
    "fusion", ["clipcap_transformer", "llava_projector", pytest.param("clipcap_mlp", marks=pytest.mark.slow)]
)
def test_fit_trains_the_mapper_with_the_native_decoder(fusion, tiny_store, tmp_path, monkeypatch):
    """Two steps of fit in process, with a frozen encoder: the mapper's weights in last.ckpt moved from their start."""
    from hydra import compose, initialize_config_dir

    from mmtrain.cli import CONFIG_DIR
    from mmtrain.commands import fit

    start = {}
    build = fit.build_module

    def recording_build(cfg, datamodule):
        module = build(cfg, datamodule)
        start["weights"] = {k: v.detach().clone() for k, v in module.captioner.fusion.state_dict().items()}
        return module

    monkeypatch.setattr(fit, "build_module", recording_build)
    fast = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1", "encoder.freeze=all"]
    overrides = [f"data.store={tiny_store}", f"out={tmp_path}", *TINY_MODEL, *fast, f"fusion={fusion}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=[*overrides, *FUSIONS[fusion]])
    summary = fit.run(cfg)
    assert summary["global_step"] == 2
    state = torch.load(Path(summary["last_checkpoint"]), map_location="cpu", weights_only=False)["state_dict"]
    trained = {k.removeprefix("captioner.fusion."): v for k, v in state.items() if k.startswith("captioner.fusion.")}
    assert trained.keys() == start["weights"].keys()
    moved = [k for k, v in trained.items() if not torch.equal(v, start["weights"][k])]
    assert len(moved) == len(trained)  # every weight of the mapper was trained
