"""Checkpoints: corrupt, truncated, or from another config or tokenizer; each is one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmtrain.tokens import Tokenizer, train_sentencepiece
from tests.conftest import TINY_MODEL, run_in_process
from tests.reliability.conftest import assert_one_line_error


def _other_tokenizer(vocab_size: int) -> torch.Tensor:
    """The bytes of a SentencePiece model trained on other text than the tiny store's (whose vocabulary is 64)."""
    words = ["river", "mountain", "boat", "cloud", "forest", "bridge", "lamp", "train", "winter", "yellow", "quiet"]
    text = [f"a {a} near the {b} by {c}" for a in words for b in words for c in words]
    model = train_sentencepiece(text, vocab_size=vocab_size)
    assert Tokenizer(model).vocab_size == vocab_size
    return torch.frombuffer(bytearray(model), dtype=torch.uint8).clone()


def _altered(checkpoint: Path, tmp_path: Path, name: str, change) -> Path:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    change(state)
    torch.save(state, tmp_path / name)
    return tmp_path / name


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"\x80\x04 definitely not a checkpoint")
    result = run_in_process("caption", f"ckpt={broken}", "inputs=[x.jpg]", f"out={tmp_path / 'o'}")
    assert_one_line_error(result.returncode, result.stderr, str(broken), "not a readable checkpoint")


def test_truncated_checkpoint_is_one_line_error_in_eval(tiny_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    data = tiny_checkpoint.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    result = run_in_process("eval", f"ckpt={truncated}", f"out={tmp_path / 'o'}")
    assert_one_line_error(result.returncode, result.stderr, str(truncated), "not a readable checkpoint")


def _swap_tokenizer(tmp_path, vocab_size: int = 40):
    tokenizer = _other_tokenizer(vocab_size)
    return lambda state: state["mmtrain"].__setitem__("tokenizer", tokenizer)


def _deeper_decoder(state):
    state["mmtrain"]["model_config"]["decoder"]["num_layers"] = 2


def _no_section(state):
    del state["mmtrain"]


@pytest.mark.parametrize(
    "change,message",
    [
        ("tokenizer", "weights do not fit the model built from this config (1 of another shape"),
        ("config", "weights do not fit the model built from this config ("),
        ("section", "not an mmtrain checkpoint"),
    ],
)
def test_a_checkpoint_that_does_not_fit_its_model_is_one_line(tiny_checkpoint, tmp_path, cli, change, message):
    changes = {"tokenizer": _swap_tokenizer(tmp_path), "config": _deeper_decoder, "section": _no_section}
    checkpoint = _altered(tiny_checkpoint, tmp_path, f"{change}.ckpt", changes[change])
    code, stderr = cli("eval", f"ckpt={checkpoint}", f"out={tmp_path / 'o'}")
    assert_one_line_error(code, stderr, str(checkpoint), message)


@pytest.mark.parametrize("key", ["resume", "init_from"])
def test_fit_refuses_a_checkpoint_of_another_tokenizer(tiny_store, tiny_checkpoint, tmp_path, cli, key):
    checkpoint = _altered(tiny_checkpoint, tmp_path, "other.ckpt", _swap_tokenizer(tmp_path, vocab_size=64))
    out = tmp_path / "run"
    code, stderr = cli("fit", f"data.store={tiny_store}", f"out={out}", *TINY_MODEL, f"{key}={checkpoint}")
    assert_one_line_error(code, stderr, str(checkpoint), "trained with another tokenizer")
    assert not (out / "checkpoints").exists()


def test_resume_from_a_truncated_last_checkpoint_is_one_line(tiny_store, tiny_checkpoint, tmp_path, cli):
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(tiny_checkpoint.read_bytes()[:1000])
    code, stderr = cli("fit", f"data.store={tiny_store}", f"out={tmp_path / 'run'}", *TINY_MODEL, "resume=last")
    assert_one_line_error(code, stderr, str(last), "not a readable checkpoint")


def test_resume_with_another_model_config_is_one_line(tiny_store, tiny_checkpoint, tmp_path, cli):
    overrides = [*TINY_MODEL, "decoder.num_layers=2", f"resume={tiny_checkpoint}"]
    code, stderr = cli("fit", f"data.store={tiny_store}", f"out={tmp_path / 'run'}", *overrides)
    assert_one_line_error(
        code, stderr, str(tiny_checkpoint), "weights do not fit the model built from this config", "missing"
    )
