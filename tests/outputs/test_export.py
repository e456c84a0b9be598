"""mmtrain export writes a pickle-free bundle that caption and eval accept in place of the checkpoint."""

from __future__ import annotations

import json

from tests.conftest import run_in_process


def test_export_bundle_then_caption_and_eval_from_it(tiny_checkpoint, tiny_store, tmp_path):
    bundle = tmp_path / "bundle"
    result = run_in_process("export", f"ckpt={tiny_checkpoint}", f"out={bundle}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"model.safetensors", "config.json", "tokenizer.model", "README.md"} <= {p.name for p in bundle.iterdir()}
    assert "mmtrain captioning model" in (bundle / "README.md").read_text()

    images = sorted((tiny_store.parent / "raw" / "test2017").glob("*.jpg"))[:2]
    from_ckpt = run_in_process(
        "caption", f"ckpt={tiny_checkpoint}", f"inputs=[{images[0]},{images[1]}]", f"out={tmp_path / 'a'}"
    )
    from_bundle = run_in_process(
        "caption", f"ckpt={bundle}", f"inputs=[{images[0]},{images[1]}]", f"out={tmp_path / 'b'}"
    )
    assert from_ckpt.returncode == 0 and from_bundle.returncode == 0, from_bundle.stderr[-2000:]
    read = lambda d: [json.loads(line)["caption"] for line in (d / "captions.jsonl").read_text().splitlines()]  # noqa: E731
    assert read(tmp_path / "a") == read(tmp_path / "b")

    evaluated = run_in_process(
        "eval", f"ckpt={bundle}", "split=test", f"out={tmp_path / 'e'}", "bootstrap=0", "meteor=false"
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "CIDEr" in json.loads((tmp_path / "e" / "metrics.json").read_text())
