"""Every config file composes, and every model config instantiates into a working captioner."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmtrain.cli import CONFIG_DIR
from mmtrain.models.build import build_captioner

GROUPS = ("encoder", "fusion", "decoder", "objective", "optim", "trainer", "data")
# Recipes whose language model comes from the Hugging Face hub: built here they would download it. tests/test_recipes.py
# composes them and builds their image side.
HUB_RECIPES = ("clipcap_gpt2_coco", "llava_style_coco", "llava_style_coco_lora")
# Recipes whose language model is a folder made first (scripts/make_tiny_lm.py): tests/models/test_hf_decoder.py builds
# them on the tiny_lm fixture's folder.
LOCAL_LM_RECIPES = ("shapes_hf_prefix",)
SMALL_ENCODER = ["encoder.pretrained=false", "encoder.img_size=32", "data.resize.size=32"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.mark.parametrize("command", ["preprocess", "fit", "eval", "caption", "export"])
def test_primary_configs_compose(command):
    if not (CONFIG_DIR / f"{command}.yaml").is_file():
        pytest.skip(f"no {command}.yaml yet")
    overrides = {"caption": ["ckpt=x.ckpt", "inputs=[a.jpg]"], "export": ["ckpt=x.ckpt"]}.get(command, [])
    cfg = _compose(command, overrides)
    assert OmegaConf.to_yaml(cfg)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes_and_resolves(group, option):
    cfg = _compose("fit", [f"{group}={option}"])
    OmegaConf.to_container(cfg, resolve=True)  # raises on a broken interpolation


def _tiny_model_overrides(cfg) -> list[str]:
    overrides = ["encoder.pretrained=false"]
    if "vit_base" in cfg.encoder.model_name or "vit_small" in cfg.encoder.model_name:
        overrides += ["+encoder.model_kwargs.depth=1"]
    return overrides


@pytest.mark.parametrize(
    "overrides",
    [[f"fusion={f}"] for f in _options("fusion")]
    + [[f"encoder={e}"] for e in _options("encoder")]
    + [[f"experiment={x}"] for x in _options("experiment") if x not in HUB_RECIPES + LOCAL_LM_RECIPES],
    ids=lambda o: o[0],
)
def test_model_configs_instantiate_and_caption(overrides):
    cfg = _compose("fit", overrides)
    cfg = _compose("fit", overrides + _tiny_model_overrides(cfg))
    model = build_captioner(OmegaConf.to_container(cfg.model, resolve=True), vocab_size=50).eval()
    size = cfg.encoder.img_size
    images = torch.randn(2, 3, size, size)
    ids = torch.randint(4, 50, (2, 5))
    assert model(images, ids).logits.shape == (2, 5, 50)
    captions = model.generate(images, config=instantiate(cfg.val_decoding), max_len=4)
    assert len(captions) == 2 and all(len(seq) <= 4 for seq in captions[0])


def test_decoding_presets_instantiate():
    for option in _options("decoding"):
        cfg = _compose("eval", [f"decoding={option}"])
        assert instantiate(cfg.decoding).max_len > 0


def test_config_dir_is_inside_the_package():
    assert Path(CONFIG_DIR).is_dir() and (Path(CONFIG_DIR) / "fit.yaml").is_file()


@pytest.mark.parametrize("experiment", [x for x in _options("experiment") if x.startswith("coco_")])
def test_coco_recipes_train_on_the_karpathy_split(experiment):
    cfg = _compose("fit", [f"experiment={experiment}"])
    assert cfg.data.name == "karpathy_coco"
    assert cfg.data.source.expected_counts == {"train": 113287, "val": 5000, "test": 5000}
