"""The pretrained-LM recipes (experiment=clipcap_gpt2_coco, llava_style_coco, llava_style_coco_lora) compose to the
published settings, and their image side gives the prefix their language model reads. Nothing is downloaded: the
towers are built without weights, and the LM itself only where the hf_causal_lm decoder config exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmtrain.cli import CONFIG_DIR
from mmtrain.errors import UserError
from mmtrain.models.loading import load_model

HF_DECODER = CONFIG_DIR / "decoder" / "hf_causal_lm.yaml"
LM_WIDTH = {"gpt2": 768, "HuggingFaceTB/SmolLM2-135M": 576}  # hidden sizes of the LMs' published configs
RECIPES = ("clipcap_gpt2_coco", "llava_style_coco", "llava_style_coco_lora")


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("fit", overrides=list(overrides))


def test_clipcap_follows_the_authors_training_script():
    cfg = _compose("experiment=clipcap_gpt2_coco", "decoder=small")  # the image side and schedule, without the LM
    assert cfg.encoder.model_name == "vit_base_patch32_clip_quickgelu_224.openai" and cfg.encoder.freeze == "all"
    assert (cfg.fusion.prefix_len, cfg.fusion.clip_len, cfg.fusion.num_layers) == (40, 40, 8)
    assert cfg.datamodule.batch_size * cfg.datamodule.captions_per_image == 40
    assert (cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.weight_decay) == (2e-5, 5000, 0.0)
    epochs = cfg.trainer.max_steps * 40 / 566_747  # Karpathy train + restval captions
    assert epochs == pytest.approx(10, abs=0.01) and cfg.data.name == "karpathy_coco"


def test_llava_stages_align_the_projector_then_add_lora():
    align = _compose("experiment=llava_style_coco", "decoder=small")
    lora = _compose("experiment=llava_style_coco_lora", "decoder=small")
    assert align.encoder.layer == -2 and align.fusion._target_.endswith("MLPProjector")
    assert (align.datamodule.batch_size * align.datamodule.captions_per_image, align.optim.lr) == (256, 1e-3)
    assert (lora.datamodule.batch_size * lora.datamodule.captions_per_image, lora.optim.lr) == (128, 2e-4)
    for stage in (align, lora):  # one epoch of the captions, 3% of it warmup
        steps = stage.trainer.max_steps
        captions = steps * stage.datamodule.batch_size * stage.datamodule.captions_per_image
        assert captions == pytest.approx(566_747, rel=0.01) and stage.optim.warmup_steps == round(0.03 * steps)
    assert lora.decoder.lora.r == 8
    with pytest.raises(UserError, match="STAGE1_RUN/checkpoints/last.ckpt: no such checkpoint"):
        load_model(Path(lora.init_from))  # stage 2 never starts from nothing: without init_from= it stops at once
    assert lora.encoder == align.encoder and lora.fusion == align.fusion  # so stage 1's weights load


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_image_side_gives_the_prefix_the_language_model_reads(recipe):
    cfg = _compose(f"experiment={recipe}", "decoder=small", "encoder.pretrained=false", "+encoder.model_kwargs.depth=2")
    torch.manual_seed(0)
    encoder = instantiate(cfg.encoder).eval()
    width = LM_WIDTH[cfg.decoder.name_or_path]
    fusion = instantiate(cfg.fusion)(in_dim=encoder.out_dim, d_model=width, num_tokens=encoder.num_tokens)
    pixels = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    with torch.no_grad():
        prefix = fusion(encoder(encoder.normalize(pixels))).prefix
    expected = 40 if recipe.startswith("clipcap") else 14 * 14  # ClipCap's prefix; every SigLIP patch token
    assert prefix.shape == (2, expected, width)


@pytest.mark.skipif(not HF_DECODER.is_file(), reason="decoder=hf_causal_lm (mmtrain/configs/decoder) is not there yet")
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipes_compose_with_the_pretrained_language_model(recipe):
    overrides = [f"experiment={recipe}"] + (["init_from=stage1/checkpoints/last.ckpt"] if "lora" in recipe else [])
    cfg = _compose(*overrides)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.decoder.name_or_path == ("gpt2" if recipe.startswith("clipcap") else "HuggingFaceTB/SmolLM2-135M")
    assert cfg.decoder.freeze is True
    lora = OmegaConf.select(cfg, "decoder.lora.r")
    assert (lora == 8) if recipe.endswith("lora") else not lora
