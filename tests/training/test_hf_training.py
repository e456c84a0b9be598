"""Training a captioner on a Hugging Face causal LM (tiny_lm): what moves, stages, resume, and every command after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_HF, TINY_MODEL, run_in_process

pytest.importorskip("peft")

ENCODER = [a for a in TINY_MODEL if not a.startswith("decoder.")]
FROZEN_ENCODER = ["encoder.freeze=all", "feature_cache=false"]  # so that the LM side alone is what trains


def _fit(store: Path, lm: Path, out: Path, *args: str) -> Path:
    result = run_in_process("fit", f"data.store={store}", f"out={out}", *ENCODER, *TINY_HF,
                            f"decoder.name_or_path={lm}", *args)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "checkpoints" / "last.ckpt"


def _state(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def _lm_weights(lm: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {
        f"captioner.decoder.lm.{k}": v for k, v in AutoModelForCausalLM.from_pretrained(str(lm)).state_dict().items()
    }


@pytest.fixture(scope="module")
def frozen_run(tiny_store, tiny_lm, tmp_path_factory) -> Path:
    """Stage 1: the projector alone trains (frozen LM and encoder), with a prompt; 12 steps."""
    out = tmp_path_factory.mktemp("hf_frozen")
    return _fit(tiny_store, tiny_lm, out, *FROZEN_ENCODER, "decoder.freeze=true", "prompt=a picture of")


def test_a_frozen_lm_does_not_move_and_only_trainable_weights_reach_the_optimizer(frozen_run, tiny_lm):
    from mmtrain.models.loading import load_model

    checkpoint = torch.load(frozen_run, map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    for name, tensor in _lm_weights(tiny_lm).items():
        assert torch.equal(state[name], tensor), name
    trainable = [n for n, p in load_model(frozen_run).captioner.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("fusion.") for n in trainable)
    in_optimizer = sum(len(group["params"]) for group in checkpoint["optimizer_states"][0]["param_groups"])
    assert in_optimizer == len(trainable)
    assert checkpoint["mmtrain"]["extra"]["prompt"] == "a picture of"


def test_lora_from_a_projector_run_trains_only_the_adapters_and_the_projector(
    frozen_run, tiny_lm, tiny_store, tmp_path
):
    lora = _fit(tiny_store, tiny_lm, tmp_path / "lora", *FROZEN_ENCODER, f"init_from={frozen_run}",
                "decoder.lora.r=4", "decoder.lora.alpha=8", "prompt=a picture of")  # fmt: skip
    before, after = _state(frozen_run), _state(lora)
    adapters = [k for k in after if ".lora_" in k]
    assert adapters and not [k for k in after if "base_layer" in k]
    assert set(after) - set(adapters) == set(before)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("captioner.fusion.") for k in moved)
    assert all(after[k].abs().sum() > 0 for k in adapters if "lora_B" in k)  # peft starts B at zero: it trained


@pytest.mark.slow  # three fits
def test_resume_with_lora_is_bit_identical(tiny_store, tiny_lm, tmp_path):
    """12 steps straight against 6 (one epoch of the tiny store) and a resume to 12."""
    args = ["decoder.lora.r=4", "decoder.freeze=true", "trainer.val_check_interval=6"]
    straight = _fit(tiny_store, tiny_lm, tmp_path / "straight", *args)
    stopped = _fit(tiny_store, tiny_lm, tmp_path / "stopped", *args, "+trainer.max_epochs=1")
    assert torch.load(stopped, map_location="cpu", weights_only=True)["global_step"] == 6
    resumed = _fit(tiny_store, tiny_lm, tmp_path / "stopped", *args, "resume=last")
    expected, got = _state(straight), _state(resumed)
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_the_loss_skips_the_prompt_and_the_padding_even_when_pad_is_eos(tiny_lm, tiny_store):
    from mmtrain.data.datamodule import Batch, CaptionDataset
    from mmtrain.tokens import HFTokenizer

    tokenizer = HFTokenizer(tiny_lm)
    prompt = tuple(tokenizer.tokens("a picture of"))
    dataset = CaptionDataset(tiny_store / "val", tokenizer, prompt=prompt)
    pool = [[dataset.encode("a red circle")], [dataset.encode("a big blue square left of a green circle")]]
    batch = Batch(None, torch.arange(2), caption_pool=pool, prompt_len=len(prompt))
    batch = batch.choose_captions(1, seed=0, pad_id=tokenizer.pad_id)
    short = pool[0][0]
    assert batch.input_ids[0, len(short) :].eq(tokenizer.eos_id).all()  # padded with eos
    assert batch.targets[0].tolist() == [False] * (1 + len(prompt)) + [True] * (len(short) - 1 - len(prompt)) + [
        False
    ] * (batch.input_ids.shape[1] - len(short))


def test_fit_caption_eval_export_and_caption_from_the_bundle(frozen_run, tiny_store, tmp_path):
    images = tiny_store.parent / "raw" / "test2017"
    from_checkpoint = run_in_process("caption", f"ckpt={frozen_run}", f"inputs=[{images}]", f"out={tmp_path / 'c1'}")
    assert from_checkpoint.returncode == 0, from_checkpoint.stderr[-2000:]
    evaluated = run_in_process("eval", f"ckpt={frozen_run}", "split=test", f"out={tmp_path / 'eval'}")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "CIDEr" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    exported = run_in_process("export", f"ckpt={frozen_run}", f"out={tmp_path / 'bundle'}")
    assert exported.returncode == 0, exported.stderr[-2000:]
    lm = tmp_path / "bundle" / "lm"
    assert (lm / "config.json").is_file() and (lm / "tokenizer.json").is_file()
    from_bundle = run_in_process("caption", f"ckpt={tmp_path / 'bundle'}", f"inputs=[{images}]",
                                 f"out={tmp_path / 'c2'}")  # fmt: skip
    assert from_bundle.returncode == 0, from_bundle.stderr[-2000:]
    first, second = ((tmp_path / c / "captions.jsonl").read_text().splitlines() for c in ("c1", "c2"))
    assert len(first) == 16 and [json.loads(r)["caption"] for r in first] == [json.loads(r)["caption"] for r in second]


def test_scst_refines_a_checkpoint_on_a_language_model(frozen_run, tiny_lm, tiny_store, tmp_path):
    """Sampling with log-probabilities and the greedy baseline run on the LM's cache; the prompt carries on."""
    scst = _fit(tiny_store, tiny_lm, tmp_path / "scst", *FROZEN_ENCODER, "objective=scst", f"init_from={frozen_run}",
                "objective.loss.num_samples=2", "objective.loss.max_len=6", "trainer.max_steps=2",
                "trainer.val_check_interval=2", "prompt=a picture of")  # fmt: skip
    checkpoint = torch.load(scst, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2 and checkpoint["mmtrain"]["extra"]["objective"] == "scst"
    before, after = _state(frozen_run), checkpoint["state_dict"]
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("captioner.fusion."))


def test_a_checkpoint_loads_without_the_lm_folder(frozen_run, tmp_path):
    """The LM's config is in the checkpoint (and its weights, even frozen): the folder it came from may be gone."""
    from mmtrain.models.loading import load_model

    checkpoint = torch.load(frozen_run, map_location="cpu", weights_only=True)
    checkpoint["mmtrain"]["model_config"]["decoder"]["name_or_path"] = str(tmp_path / "moved")
    torch.save(checkpoint, tmp_path / "moved.ckpt")
    images = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    assert load_model(tmp_path / "moved.ckpt").caption(images) == load_model(frozen_run).caption(images)


@pytest.fixture(scope="module")
def qa_store(tmp_path_factory) -> Path:
    """A tiny question -> answer store (see tests/data/test_prompts.py)."""
    from tests.data.test_prompts import make_qa_store

    return make_qa_store(tmp_path_factory.mktemp("qa"))


def test_a_store_with_per_sample_prompts_trains_and_evaluates_on_the_lm(tiny_lm, qa_store, tmp_path):
    """Each answer row starts with bos and its own question, with no loss on them; eval answers every pair."""
    from mmtrain.data.batch import CaptionDataset, collate
    from mmtrain.tokens import HFTokenizer

    tokenizer = HFTokenizer(tiny_lm)
    dataset = CaptionDataset(qa_store / "train", tokenizer, captions=3, max_len=16)
    batch = collate([dataset.stream[i] for i in range(2)], dataset).choose_captions(3, seed=0, pad_id=tokenizer.pad_id)
    for ids, targets in zip(batch.input_ids.tolist(), batch.targets.tolist(), strict=True):
        first = targets.index(True)
        assert tokenizer.decode(ids[1:first]) in ("what color is it?", "where is it?") and not any(targets[:first])
    run = _fit(qa_store, tiny_lm, tmp_path / "fit", *FROZEN_ENCODER, "datamodule.batch_size=4",
               "datamodule.eval_batch_size=2", "trainer.max_steps=2", "trainer.val_check_interval=2")  # fmt: skip
    evaluated = run_in_process("eval", f"ckpt={run}", "split=test", f"out={tmp_path / 'eval'}", "bootstrap=0")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    rows = json.loads((tmp_path / "eval" / "results_test.json").read_text())
    assert [(r["image_id"], r["prompt"]) for r in rows][:2] == [("14:0", "what color is it?"), ("14:1", "where is it?")]
    assert len(rows) == 6


@pytest.fixture(scope="module")
def cross_run(tiny_store, tiny_lm, tmp_path_factory) -> Path:
    """fusion=cross_attention into the frozen GPT-2 (new cross-attention layers), frozen encoder; 4 steps."""
    out = tmp_path_factory.mktemp("hf_cross")
    result = run_in_process("fit", f"data.store={tiny_store}", f"out={out}", *ENCODER, *FROZEN_ENCODER,
                            "decoder=hf_causal_lm", "fusion=cross_attention", f"decoder.name_or_path={tiny_lm}",
                            "decoder.freeze=true", "trainer.max_steps=4", "trainer.val_check_interval=4")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "checkpoints" / "last.ckpt"


def test_cross_attention_into_a_frozen_lm_trains_its_new_layers_and_the_checkpoint_records_them(cross_run, tiny_lm):
    from mmtrain.models.loading import load_model

    checkpoint = torch.load(cross_run, map_location="cpu", weights_only=True)
    assert checkpoint["mmtrain"]["model_config"]["decoder"]["lm_config"]["add_cross_attention"] is True
    state = checkpoint["state_dict"]
    for name, tensor in _lm_weights(tiny_lm).items():
        assert torch.equal(state[name], tensor), name  # the LM's own weights, as saved
    trainable = [n for n, p in load_model(cross_run).captioner.named_parameters() if p.requires_grad]
    lm = [n for n in trainable if n.startswith("decoder.")]
    assert lm and all(".crossattention." in n or ".ln_cross_attn." in n for n in lm)
    assert {n.split(".")[0] for n in trainable} == {"fusion", "decoder"}
    in_optimizer = sum(len(group["params"]) for group in checkpoint["optimizer_states"][0]["param_groups"])
    assert in_optimizer == len(trainable)


def test_cross_attention_run_evaluates_exports_and_captions_the_same_from_the_bundle(cross_run, tiny_store, tmp_path):
    images = tiny_store.parent / "raw" / "test2017"
    from_checkpoint = run_in_process("caption", f"ckpt={cross_run}", f"inputs=[{images}]", f"out={tmp_path / 'c1'}")
    assert from_checkpoint.returncode == 0, from_checkpoint.stderr[-2000:]
    evaluated = run_in_process("eval", f"ckpt={cross_run}", "split=test", f"out={tmp_path / 'eval'}", "bootstrap=0")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "CIDEr" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    exported = run_in_process("export", f"ckpt={cross_run}", f"out={tmp_path / 'bundle'}")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert json.loads((tmp_path / "bundle" / "lm" / "config.json").read_text())["add_cross_attention"] is True
    from_bundle = run_in_process("caption", f"ckpt={tmp_path / 'bundle'}", f"inputs=[{images}]",
                                 f"out={tmp_path / 'c2'}")  # fmt: skip
    assert from_bundle.returncode == 0, from_bundle.stderr[-2000:]
    first, second = ((tmp_path / c / "captions.jsonl").read_text().splitlines() for c in ("c1", "c2"))
    assert len(first) == 16 and [json.loads(r)["caption"] for r in first] == [json.loads(r)["caption"] for r in second]
