"""``mmtrain eval results=...`` scores without Hydra and gives what the Hydra run gives."""

from __future__ import annotations

import json
from pathlib import Path

from mmtrain.cli import main
from mmtrain.commands import run_hydra
from mmtrain.commands.eval_files import fast_eval

REFERENCES = {1: ["a dog runs on the grass", "a brown dog running"], 2: ["a red car on a street", "a parked car"]}
RESULTS = [{"image_id": 1, "caption": "A dog running on grass."}, {"image_id": 2, "caption": "a car parked on a road"}]


def _files(folder: Path) -> tuple[Path, Path]:
    images = [{"id": k} for k in REFERENCES]
    annotations = [
        {"id": n, "image_id": k, "caption": c}
        for n, (k, c) in enumerate((k, c) for k, refs in REFERENCES.items() for c in refs)
    ]
    references = folder / "captions.json"
    references.write_text(json.dumps({"images": images, "annotations": annotations}))
    results = folder / "results.json"
    results.write_text(json.dumps(RESULTS))
    return results, references


def _metrics(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("stamp")
    return metrics


def test_without_hydra_the_same_files_and_numbers(tmp_path: Path) -> None:
    results, references = _files(tmp_path)
    common = [f"results={results}", f"references={references}", "meteor=false", "bootstrap=20"]
    assert fast_eval([*common, f"out={tmp_path / 'fast'}"]) == 0
    assert run_hydra("eval", "mmtrain.commands.eval", [*common, f"out={tmp_path / 'hydra'}"]) == 0
    fast, hydra = tmp_path / "fast", tmp_path / "hydra"
    assert _metrics(fast) == _metrics(hydra) and _metrics(fast)["CIDEr"] > 0
    assert (fast / "per_image.jsonl").read_text() == (hydra / "per_image.jsonl").read_text()
    assert (fast / "report.md").read_text() == (hydra / "report.md").read_text()
    config = lambda run: (run / "config.yaml").read_text().replace(str(run), "OUT")  # noqa: E731
    assert config(fast) == config(hydra)
    manifest = json.loads((fast / "run_manifest.json").read_text())
    assert manifest["config"]["results"] == str(results) and manifest["stamp"]["extra"]["command"] == "eval"


def test_what_needs_hydra_goes_through_hydra(tmp_path: Path) -> None:
    results, references = _files(tmp_path)
    assert fast_eval([f"results={results}", f"references={references}", "ckpt=model.ckpt"]) is None
    assert fast_eval([f"results={results}", "bootstrap=many"]) is None
    assert fast_eval([f"results={results}", "+extra=1"]) is None
    assert fast_eval(["--help"]) is None


def test_a_bad_results_file_is_one_line_and_exit_1(tmp_path: Path, capsys) -> None:
    _, references = _files(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("[{]")
    out = tmp_path / "out"
    code = main(["eval", f"results={bad}", f"references={references}", f"out={out}", "meteor=false"])
    error = capsys.readouterr().err.strip()
    assert code == 1 and len(error.splitlines()) == 1
    assert error.startswith("mmtrain eval: error:") and "bad.json" in error
    assert (out / "error.log").read_text().strip() == error
