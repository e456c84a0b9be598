"""docs/benchmarks.md is written from each benchmark's JSON: the quality table shows each run against its peer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _script(name: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # the scripts import benchdoc as a sibling
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _run(experiment: str, seed: int, fit_s: float, scene: float, cider: float, met: bool, **extra) -> dict:
    return {"experiment": experiment, "seed": seed, "fit_s": fit_s, "scene_accuracy": scene, "CIDEr": cider,
            "met": met, **extra}  # fmt: skip


def test_quality_section_compares_each_fusion_with_cross_attention_of_the_same_seed(tmp_path, monkeypatch):
    quality = _script("bench_quality", monkeypatch)
    benchdoc = _script("benchdoc", monkeypatch)
    report = {
        "started": "2026-11-29 20:00 UTC",
        "seeds": [0],
        "fusions": {
            "cross_attention": {"runs": [_run("shapes_demo", 0, 417.0, 0.984, 6.35, True)], "mean": 0.984,
                                "worst": 0.984, "met": 1},
            "concat": {"runs": [_run("shapes_concat", 0, 617.0, 0.698, 5.75, False)], "mean": 0.698, "worst": 0.698,
                       "met": 0},
        },
        "scst": {"runs": [_run("shapes_scst", 0, 150.0, 0.994, 6.74, True, CIDEr_start=6.35, ratio_to_start=1.061)],
                 "mean": 6.74, "worst": 6.74, "met": 1},
        "itc": {"runs": [_run("shapes_itc", 0, 398.0, 0.772, 6.1, True, **{"i2t_R@5": 0.936})], "mean": 0.936,
                "worst": 0.936, "met": 1},
    }  # fmt: skip
    doc = tmp_path / "benchmarks.md"
    doc.write_text(benchdoc.HEADER + "\n<!-- bench:train -->\nkept\n<!-- /bench:train -->\n", encoding="utf-8")
    rows = quality.doc_rows(report)
    benchdoc.write_section("quality", "Quality", report, rows, notes=quality.doc_notes(report), doc=doc)
    text = doc.read_text(encoding="utf-8")
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| `")}
    concat = lines["| `shapes_concat` (concat), seed 0: test scene accuracy, fit 10 min 17 s"]
    assert "| 0.698 | 0.984 | 0.71 | >= 0.9 in a 600 s fit | **no** |" in concat
    demo = lines["| `shapes_demo` (cross_attention), seed 0: test scene accuracy, fit 6 min 57 s"]
    assert demo.endswith("| 0.984 | – | – | >= 0.9 in a 600 s fit | yes |")
    assert "| 6.74 | 6.35 | 1.06 | above its start | yes |" in text
    assert "| 0.936 | – | – | >= 0.8 | yes |" in text
    assert "Started 2026-11-29 20:00 UTC" in text and "concat mean 0.698 (worst 0.698, target met 0 times)" in text
    assert "<!-- bench:train -->\nkept\n<!-- /bench:train -->" in text  # another benchmark's section stays
