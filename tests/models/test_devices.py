"""`device=` for eval and caption: auto picks the GPU when there is one; a missing GPU is one clear line."""

from __future__ import annotations

import json

import pytest
import torch

from mmtrain.errors import UserError
from mmtrain.models.loading import load_model, resolve_device
from tests.conftest import run_in_process
from tests.reliability.conftest import assert_one_line_error

HAS_CUDA = torch.cuda.is_available()


def _images(store, n: int) -> torch.Tensor:
    """The first ``n`` test images of the tiny store as uint8 (n, 3, H, W), sized as the store's manifest says."""
    import numpy as np

    from mmtrain.data.images import ResizeSpec, load_image

    resize = json.loads((store / "manifest.json").read_text())["resize"]
    spec = ResizeSpec(size=resize["size"], mode=resize["mode"])
    files = sorted((store.parent / "raw" / "test2017").glob("*.jpg"))[:n]
    return torch.from_numpy(np.stack([load_image(f, spec) for f in files])).permute(0, 3, 1, 2)


def test_auto_is_the_cpu_without_a_gpu_and_the_gpu_with_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize(
    ("name", "count", "message"),
    [
        ("cuda", 0, "no CUDA device is visible"),
        ("cuda:3", 2, "only 2 CUDA device(s) are visible"),
        ("banana", 1, "not a device name"),
        ("meta", 1, "only auto, cpu, cuda and cuda:N"),
    ],
)
def test_an_unusable_device_is_a_user_error_naming_it(monkeypatch, name, count, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(UserError, match=f"device={name}") as err:
        resolve_device(name)
    assert message in str(err.value)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error given when no GPU is visible")
def test_caption_on_a_gpu_that_is_not_there_is_one_line(tiny_checkpoint, tmp_path):
    result = run_in_process(
        "caption", f"ckpt={tiny_checkpoint}", "inputs=[x.jpg]", "device=cuda", f"out={tmp_path / 'o'}"
    )
    assert_one_line_error(result.returncode, result.stderr, "device=cuda", "no CUDA device is visible")


def test_a_model_moved_by_name_decodes_where_it_was_put(tiny_checkpoint, tiny_store):
    images = _images(tiny_store, 4)
    model = load_model(tiny_checkpoint)
    before = model.caption(images)
    assert model.to("cpu").device == torch.device("cpu") and model.caption(images) == before
    assert model.to("auto").device.type == ("cuda" if HAS_CUDA else "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_greedy_captions_on_the_gpu_equal_those_on_the_cpu(tiny_checkpoint, tiny_store):
    batch = _images(tiny_store, 8)
    model = load_model(tiny_checkpoint)
    on_cpu = model.caption(batch)
    on_gpu = model.to("cuda").caption(batch)
    assert model.device.type == "cuda"
    assert on_gpu == on_cpu
