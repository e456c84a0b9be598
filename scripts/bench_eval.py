"""Benchmark mmtrain's caption metrics against pycocoevalcap on 5,000 images x 5 references; prints JSON.

The corpus repeats and permutes the real coco_fakecap_1000 captions under distinct image ids. Two comparisons:

- in process: PTB tokenization + BLEU-1..4 + ROUGE-L + CIDEr-D, mmtrain vs pycocoevalcap (Java PTBTokenizer, Bleu,
  Rouge, Cider), on the same input, checking that every number agrees;
- whole process: ``mmtrain eval results=... references=...`` (with its bootstrap intervals and report files) vs a script
  that loads the same files with pycocotools and runs pycocoevalcap's four stages, each as a fresh subprocess.

The run's table goes into the "eval" section of ``docs/benchmarks.md`` (``--no-doc`` leaves the page alone).

Usage: python scripts/bench_eval.py [--images 5000] [--data ../shared/data/coco_fakecap_1000] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "coco_fakecap_1000"

PYCOCO_SCRIPT = """
import sys
from pycocotools.coco import COCO
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.cider.cider import Cider
coco = COCO(sys.argv[2])
results = coco.loadRes(sys.argv[1])
ids = coco.getImgIds()
tokenizer = PTBTokenizer()
gts = tokenizer.tokenize({i: coco.imgToAnns[i] for i in ids})
res = tokenizer.tokenize({i: results.imgToAnns[i] for i in ids})
for scorer in (Bleu(4), Rouge(), Cider()):
    print(scorer.method(), scorer.compute_score(gts, res)[0])
"""


def build_corpus(data: Path, images: int, seed: int = 0) -> tuple[dict, dict]:
    """References (5 per image) and candidates for ``images`` images, from the real 1,000-image set."""
    captions = json.loads((data / "captions_val2014_subset1000.json").read_text())
    by_image: dict[int, list[str]] = {}
    for annotation in captions["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation["caption"])
    sources = sorted(by_image)
    results = json.loads((data / "captions_val2014_fakecap_results.json").read_text())
    candidates_pool = [r["caption"] for r in results]
    rng = random.Random(seed)
    references, candidates = {}, {}
    for index in range(images):
        refs = list(by_image[sources[index % len(sources)]][:5])
        rng.shuffle(refs)
        references[1_000_000 + index] = refs
        candidates[1_000_000 + index] = candidates_pool[(index * 7 + index // len(sources)) % len(candidates_pool)]
    return references, candidates


def time_mmtrain(references: dict, candidates: dict) -> tuple[dict, dict, dict]:
    """mmtrain's four stages: seconds per stage, scores, tokenized captions."""
    import numpy as np

    from mmtrain.metrics.bleu import corpus_bleu, counts_from_table
    from mmtrain.metrics.cider import cider_from_table
    from mmtrain.metrics.ngrams import build_table
    from mmtrain.metrics.rouge import rouge_l
    from mmtrain.metrics.tokenize import tokenize_corpus

    seconds, start = {}, time.perf_counter()
    gts = tokenize_corpus(references)
    res = tokenize_corpus({key: [caption] for key, caption in candidates.items()})
    seconds["tokenize"] = time.perf_counter() - start
    keys = list(references)
    refs, cands = [gts[k] for k in keys], [res[k][0] for k in keys]
    start = time.perf_counter()
    table = build_table([c.split() for c in cands] + [r.split() for group in refs for r in group])
    ref_image = np.repeat(np.arange(len(refs)), [len(group) for group in refs])
    bleu = corpus_bleu(counts_from_table(table, ref_image))
    seconds["bleu"] = time.perf_counter() - start
    start = time.perf_counter()
    rouge = rouge_l(refs, cands).score
    seconds["rouge"] = time.perf_counter() - start
    start = time.perf_counter()
    cider = cider_from_table(table, ref_image).score
    seconds["cider"] = time.perf_counter() - start
    return seconds, {"Bleu": bleu, "ROUGE_L": rouge, "CIDEr": cider}, {"gts": gts, "res": res}


def time_pycocoevalcap(references: dict, candidates: dict) -> tuple[dict, dict, dict]:
    """pycocoevalcap's four stages, same input."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    seconds, start = {}, time.perf_counter()
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in references.items()})
    res = tokenizer.tokenize({k: [{"caption": c}] for k, c in candidates.items()})
    seconds["tokenize"] = time.perf_counter() - start
    scores = {}
    for name, scorer, kwargs in (("Bleu", Bleu(4), {"verbose": 0}), ("ROUGE_L", Rouge(), {}), ("CIDEr", Cider(), {})):
        start = time.perf_counter()
        scores[name] = scorer.compute_score(gts, res, **kwargs)[0]
        seconds[name.lower().split("_")[0]] = time.perf_counter() - start
    return seconds, scores, {"gts": gts, "res": res}


def max_difference(ours: dict, theirs: dict) -> float:
    diffs = [abs(a - b) for a, b in zip(ours["Bleu"], theirs["Bleu"], strict=True)]
    diffs += [abs(ours[k] - float(theirs[k])) for k in ("ROUGE_L", "CIDEr")]
    return max(diffs)


def whole_process(references: dict, candidates: dict, workdir: Path) -> dict:
    """Both tools from the command line, on files."""
    ref_file, res_file = workdir / "captions.json", workdir / "results.json"
    images = [{"id": k} for k in references]
    annotations = [
        {"id": n, "image_id": k, "caption": c}
        for n, (k, c) in enumerate((k, c) for k, v in references.items() for c in v)
    ]
    ref_file.write_text(json.dumps({"images": images, "annotations": annotations}))
    res_file.write_text(json.dumps([{"image_id": k, "caption": c} for k, c in candidates.items()]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ours_cmd = [sys.executable, "-m", "mmtrain.cli", "eval", f"results={res_file}", f"references={ref_file}"]
    ours_cmd += [f"out={workdir / 'out'}", "meteor=false"]
    theirs_cmd = [sys.executable, "-c", PYCOCO_SCRIPT, str(res_file), str(ref_file)]
    timings = {}
    for name, command in (("mmtrain", ours_cmd), ("pycocoevalcap", theirs_cmd)):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        timings[name] = time.perf_counter() - start
    return {
        "mmtrain_command": "mmtrain eval results=RESULTS references=REFERENCES out=OUT meteor=false",
        "mmtrain_s": round(timings["mmtrain"], 3),
        "pycocoevalcap_s": round(timings["pycocoevalcap"], 3),
        "speedup": round(timings["pycocoevalcap"] / timings["mmtrain"], 1),
        "target_speedup": 5,
        "mmtrain_includes": "PTB tokenization, BLEU, ROUGE-L, CIDEr-D, 1000-resample bootstrap CIs, diversity, 3 files",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-doc", action="store_true", help="print the JSON only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(json.dumps({"skipped": f"real data not found at {args.data} (needs ../shared/data)"}))
        return
    sys.path.insert(0, str(ROOT))
    references, candidates = build_corpus(args.data, args.images)
    ours_s, ours, ours_tokens = time_mmtrain(references, candidates)
    theirs_s, theirs, theirs_tokens = time_pycocoevalcap(references, candidates)
    mismatched = sum(ours_tokens[k][key] != theirs_tokens[k][key] for k in ("gts", "res") for key in references)
    total_ours, total_theirs = sum(ours_s.values()), sum(theirs_s.values())
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        whole = whole_process(references, candidates, Path(tmp))
    report = {
        "images": args.images,
        "references_per_image": 5,
        "in_process": {
            "mmtrain_s": {k: round(v, 3) for k, v in ours_s.items()} | {"total": round(total_ours, 3)},
            "pycocoevalcap_s": {k: round(v, 3) for k, v in theirs_s.items()} | {"total": round(total_theirs, 3)},
            "speedup": round(total_theirs / total_ours, 1),
            "target_speedup": 10,
            "scores": {"Bleu_4": ours["Bleu"][3], "ROUGE_L": ours["ROUGE_L"], "CIDEr": ours["CIDEr"]},
            "max_abs_score_difference": max_difference(ours, theirs),
            "identical": max_difference(ours, theirs) <= 1e-12 and mismatched == 0,
            "tokenization_mismatches": mismatched,
        },
        "whole_process": whole,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report, indent=2))
    if not args.no_doc:
        write_doc(report)


def write_doc(report: dict) -> None:
    """The run's two rows as the "eval" section of docs/benchmarks.md."""
    from benchdoc import write_section

    inner, whole = report["in_process"], report["whole_process"]
    ours, theirs = inner["mmtrain_s"], inner["pycocoevalcap_s"]
    rows = [
        (
            "in process, s: PTB tokenize + BLEU + ROUGE-L + CIDEr-D",
            ours["total"],
            theirs["total"],
            f"{inner['speedup']}x",
            f">= {inner['target_speedup']}x",
            inner["speedup"] >= inner["target_speedup"],
        ),
        (
            "whole process, s: `mmtrain eval results=... references=...` vs a pycocoevalcap script",
            whole["mmtrain_s"],
            whole["pycocoevalcap_s"],
            f"{whole['speedup']}x",
            f">= {whole['target_speedup']}x",
            whole["speedup"] >= whole["target_speedup"],
        ),
    ]
    stages = lambda times: " / ".join(f"{k} {v}" for k, v in times.items() if k != "total")  # noqa: E731
    notes = (
        f"{report['images']:,} images x {report['references_per_image']} real COCO references (coco_fakecap_1000"
        f" captions, repeated under distinct ids). Stages in process, s: mmtrain {stages(ours)}; pycocoevalcap"
        f" {stages(theirs)}. Every score identical to pycocoevalcap's: {inner['identical']} (largest difference"
        f" {inner['max_abs_score_difference']}, {inner['tokenization_mismatches']} tokenization mismatches). The whole"
        f" process of mmtrain also includes {whole['mmtrain_includes']}. Load average (1 min) at the end:"
        f" {report['load_average_1min']} on {report['cpus']} cores."
    )
    write_section("eval", "Caption metrics against pycocoevalcap", report, rows, notes=notes)


if __name__ == "__main__":
    main()
