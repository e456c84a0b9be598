"""The feature cache: cached tokens equal the live frozen encoder's, fit trains from it, mismatches are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from mmtrain.cli import CONFIG_DIR
from mmtrain.data.store import require_store
from mmtrain.errors import UserError
from mmtrain.models.encoders import TimmEncoder
from mmtrain.training.features import feature_key, find_feature_cache, key_id, write_feature_cache
from tests.conftest import TINY_DATA, TINY_MODEL, run_cli

# A batch-norm CNN: a frozen encoder must give in training exactly what was cached (no batch statistics).
RESNET = {"layers": [1, 1, 1, 1], "channels": [8, 8, 16, 16], "stem_width": 8, "output_stride": 8}


def tiny_resnet(seed: int = 0) -> TimmEncoder:
    torch.manual_seed(seed)
    return TimmEncoder(model_name="resnet18", img_size=32, freeze="all", model_kwargs=RESNET)


@pytest.fixture
def store(tiny_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny store (caches are written into it)."""
    return Path(shutil.copytree(tiny_store, tmp_path / "store"))


def read_split(split_dir: Path) -> list[dict]:
    from litdata import StreamingDataset

    stream = StreamingDataset(str(split_dir), shuffle=False)
    return [stream[i] for i in range(len(stream))]


def test_cached_tokens_match_the_live_frozen_encoder_and_decode_the_same_captions(store):
    from mmtrain.models.captioner import Captioner
    from mmtrain.models.decoder import TransformerDecoder
    from mmtrain.models.fusion.cross_attention import CrossAttentionFusion
    from mmtrain.models.generation import DecodingConfig, decode

    folder = write_feature_cache(store, tiny_resnet(), batch_size=40)
    cached = read_split(folder / "train")
    images = read_split(store / "train")
    assert [c["image_id"] for c in cached] == [i["image_id"] for i in images] and len(cached) == 96
    assert [c["captions"] for c in cached] == [i["captions"] for i in images]
    assert cached[0]["features"].dtype == np.float16 and cached[0]["features"].shape == (16, 16)  # 4x4 grid

    torch.manual_seed(1)
    captioner = Captioner(
        encoder=tiny_resnet(),
        fusion=lambda **kw: CrossAttentionFusion(**kw),
        decoder=lambda **kw: TransformerDecoder(d_model=16, num_layers=1, num_heads=2, **kw),
        vocab_size=64,
    ).train()  # as in fit: the frozen encoder must not switch to batch statistics
    pixels = torch.from_numpy(np.stack([i["image"] for i in images[:24]])).permute(0, 3, 1, 2)
    tokens = torch.from_numpy(np.stack([c["features"] for c in cached[:24]]))
    with torch.no_grad():
        live = captioner.image_tokens(captioner.normalize(pixels))
    torch.testing.assert_close(tokens.float(), live, rtol=2e-3, atol=2e-3)  # fp16 rounding only

    captioner.eval()
    config = DecodingConfig(max_len=12)
    with torch.no_grad():
        from_cache = decode(captioner, captioner.encode(None, tokens=tokens), 24, config)
    assert from_cache == captioner.generate(captioner.normalize(pixels), config=config)


def test_the_cache_of_another_encoder_is_refused_with_both_keys(store):
    folder = write_feature_cache(store, tiny_resnet(seed=0))
    path, manifest = require_store(store)
    assert find_feature_cache(path, manifest, tiny_resnet(seed=0)) == folder
    with pytest.raises(UserError) as caught:
        find_feature_cache(path, manifest, tiny_resnet(seed=1))
    message = str(caught.value)
    this_key = key_id(feature_key(tiny_resnet(seed=1), manifest))
    assert "\n" not in message and str(store / "features") in message
    assert folder.name in message and this_key in message and folder.name != this_key
    assert "differ in weights_sha256)" in message  # same model and images, other weights


ENCODER = [o for o in TINY_MODEL if o.startswith("encoder")]


def compose(command: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(command, overrides=list(overrides))


def compose_fit(store: Path, out: Path, *overrides: str):
    fast = ["trainer.max_steps=4", "trainer.val_check_interval=4", "encoder.freeze=all"]
    return compose("fit", f"data.store={store}", f"out={out}", *TINY_MODEL, *fast, *overrides)


def test_fit_with_a_frozen_encoder_trains_from_the_cache_without_running_the_encoder(
    store, tiny_store, tmp_path, monkeypatch
):
    from mmtrain.commands import fit, preprocess
    from mmtrain.models.loading import load_model

    raw = f"data.root={tiny_store.parent / 'raw'}"  # the store's own source: only the cache is new
    preprocess.run(compose("preprocess", raw, f"out={store}", *TINY_DATA, *ENCODER, "features=true"))
    (folder,) = (store / "features").iterdir()

    training_calls = []
    forward = TimmEncoder.forward

    def counting_forward(self, images):
        if torch.is_grad_enabled():  # training steps; validation decodes under no_grad
            training_calls.append(images.shape[0])
        return forward(self, images)

    monkeypatch.setattr(TimmEncoder, "forward", counting_forward)
    summary = fit.run(compose_fit(store, tmp_path / "run"))
    assert summary["global_step"] == 4 and training_calls == []
    checkpoint = Path(summary["last_checkpoint"])
    assert checkpoint.is_file() and (checkpoint.parent / "best.ckpt").is_file()

    model = load_model(checkpoint)  # captions image pixels through the encoder, as `mmtrain caption` does
    assert model.extra["feature_cache"] == folder.name
    pixels = torch.from_numpy(np.stack([i["image"] for i in read_split(store / "test")[:4]])).permute(0, 3, 1, 2)
    captions = model.caption(pixels)
    assert len(captions) == 4 and all(isinstance(c[0], str) for c in captions)

    fit.run(compose_fit(store, tmp_path / "live", "feature_cache=false", "trainer.max_steps=1"))
    assert training_calls == [16]  # without the cache the encoder runs on every training batch


@pytest.mark.slow
def test_cli_preprocess_features_fit_from_cache_caption_and_refuse_another_encoder(tiny_store, tmp_path):
    store = Path(shutil.copytree(tiny_store, tmp_path / "store"))
    raw = f"data.root={tiny_store.parent / 'raw'}"
    result = run_cli("preprocess", f"out={store}", "features=true", raw, *TINY_DATA, *ENCODER)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (store / "features").iterdir()
    assert json.loads((folder / "features.json").read_text())["items"] == {"train": 96}

    run = tmp_path / "run"
    result = run_cli("fit", f"data.store={store}", f"out={run}", *TINY_MODEL, "encoder.freeze=all")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"training from the feature cache {folder}" in (run / "fit.log").read_text()
    images = sorted((tiny_store.parent / "raw" / "test2017").glob("*.jpg"))[:3]
    out = tmp_path / "captions"
    ckpt = run / "checkpoints" / "last.ckpt"
    result = run_cli("caption", f"ckpt={ckpt}", f"inputs=[{images[0]},{images[1]},{images[2]}]", f"out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len((out / "captions.jsonl").read_text().splitlines()) == 3

    result = run_cli("fit", f"data.store={store}", f"out={tmp_path / 'x'}", *TINY_MODEL, "encoder.freeze=all", "seed=1")
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and folder.name in error[0] and "weights_sha256" in error[0]
    assert "Traceback" not in result.stderr
