"""Every command on a tiny shapes set, through the real console entry point."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, run_in_process


def test_preprocess_writes_a_complete_store(tiny_store):
    manifest = json.loads((tiny_store / "manifest.json").read_text())
    assert {s: manifest["splits"][s]["images"] for s in ("train", "val", "test")} == {
        "train": 96,
        "val": 16,
        "test": 16,
    }
    assert manifest["splits"]["train"]["captions"]["kept"] == 96 * 5
    assert (tiny_store / "tokenizer.model").stat().st_size > 0
    refs = json.loads((tiny_store / "references_test.json").read_text())
    assert set(refs) >= {"images", "annotations", "info", "licenses"}
    assert len(refs["images"]) == 16 and len(refs["annotations"]) == 80
    assert (tiny_store / "rejected.jsonl").read_text() == ""


def test_preprocess_rerun_is_a_no_op(tiny_store):
    before = (tiny_store / "manifest.json").stat().st_mtime_ns
    result = run_cli(
        "preprocess",
        f"data.root={tiny_store.parent / 'raw'}",
        f"out={tiny_store}",
        "data.source.prepare.splits={train:96,val:16,test:16}",
        "data.source.prepare.image_size=32",
        "data.resize.size=32",
        "data.text.vocab_size=64",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tiny_store / "manifest.json").stat().st_mtime_ns == before


def test_fit_writes_checkpoints_logs_and_config(tiny_checkpoint):
    run_dir = tiny_checkpoint.parents[1]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert tiny_checkpoint.is_file()
    assert "max_steps: 12" in (run_dir / "config.yaml").read_text()
    header = (run_dir / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss" in header and "val/CIDEr" in header
    summary = json.loads((run_dir / "fit_summary.json").read_text())
    assert summary["global_step"] == 12


def test_eval_checkpoint_on_test_split(tiny_checkpoint, tmp_path):
    # METEOR off: its first use on a machine reads the 5.3-million-pair paraphrase table (30-45 s on 2 cores), which
    # the slow test below does with eval's default meteor=auto.
    result = run_in_process(
        "eval", f"ckpt={tiny_checkpoint}", "split=test", f"out={tmp_path}", "bootstrap=50", "meteor=false"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr", "scene_accuracy"):
        assert 0.0 <= metrics[key] <= 10.0, key
    results = json.loads((tmp_path / "results_test.json").read_text())
    assert len(results) == 16 and all(isinstance(r["caption"], str) for r in results)
    last_line = result.stdout.strip().splitlines()[-1]
    assert json.loads(last_line)["CIDEr"] == round(metrics["CIDEr"], 4)


@pytest.mark.slow
def test_eval_by_default_reports_meteor_from_the_python_implementation(tiny_checkpoint, tmp_path):
    from mmtrain.metrics.meteor.resources import resources_unavailable_reason

    if resources_unavailable_reason() is not None:
        pytest.skip(f"the Python METEOR {resources_unavailable_reason()}")
    result = run_in_process("eval", f"ckpt={tiny_checkpoint}", "split=test", f"out={tmp_path}", "bootstrap=0")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["METEOR"] <= 1.0 and metrics["meteor_implementation"] == "python"


def test_caption_images_and_report_unreadable(tiny_checkpoint, tiny_store, tmp_path):
    images = sorted((tiny_store.parent / "raw" / "test2017").glob("*.jpg"))[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "out"
    result = run_in_process("caption", f"ckpt={tiny_checkpoint}", f"inputs=[{images[0].parent},{broken}]", f"out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert len(rows) == 16
    assert "broken.jpg" in result.stderr and "not_an_image" in result.stderr
    assert str(images[0]) in {r["file"] for r in rows}


def test_list_file_paths_resolve_beside_the_list_or_from_the_working_directory(tmp_path, monkeypatch):
    from mmtrain.data.inputs import expand_inputs

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")
    listing = tmp_path / "lists" / "inputs.txt"
    listing.write_text("# two images\na.jpg\n\nb.jpg\n")
    monkeypatch.chdir(tmp_path)
    paths, missing = expand_inputs([str(listing)])
    assert [p.resolve() for p in paths] == [(tmp_path / "lists" / "a.jpg").resolve(), (tmp_path / "b.jpg").resolve()]
    assert missing == []
