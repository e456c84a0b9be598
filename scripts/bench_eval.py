"""Benchmark mmtrain's caption metrics against pycocoevalcap on 5,000 images x 5 references; prints JSON.

The corpus repeats and permutes the real coco_fakecap_1000 captions under distinct image ids. Each comparison runs
``--rounds`` times, the two sides alternating which goes first so that the load of a shared machine falls on both,
and reports medians:

- in process: PTB tokenization + BLEU-1..4 + ROUGE-L + CIDEr-D, mmtrain vs pycocoevalcap (Java PTBTokenizer, Bleu,
  Rouge, Cider), on the same input, checking that every number agrees;
- METEOR in process: mmtrain's Python METEOR in one process vs pycocoevalcap's Meteor (the 1.5 jar), both started
  inside the timing, on pycocoevalcap's tokenization, checking the corpus score and every image's score;
- bootstrap: 1,000-resample intervals of every metric, as a share of the in-process scoring time;
- whole process: ``mmtrain eval results=... references=... meteor=false bootstrap=0`` vs a script that loads the
  same files with pycocotools and runs pycocoevalcap's four stages, each as a fresh subprocess.

The run's table goes into the "eval" section of ``docs/benchmarks.md`` (``--no-doc`` leaves the page alone).

Usage: python scripts/bench_eval.py [--images 5000] [--rounds 3] [--data ../shared/data/coco_fakecap_1000] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
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


def _median_stages(rounds: list[dict]) -> dict:
    stages = {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]}
    return stages | {"total": round(statistics.median(sum(r.values()) for r in rounds), 3)}


def max_difference(ours: dict, theirs: dict) -> float:
    diffs = [abs(a - b) for a, b in zip(ours["Bleu"], theirs["Bleu"], strict=True)]
    diffs += [abs(ours[k] - float(theirs[k])) for k in ("ROUGE_L", "CIDEr")]
    return max(diffs)


def whole_process(references: dict, candidates: dict, workdir: Path, rounds: int) -> dict:
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
    ours_cmd += [f"out={workdir / 'out'}", "meteor=false", "bootstrap=0"]
    theirs_cmd = [sys.executable, "-c", PYCOCO_SCRIPT, str(res_file), str(ref_file)]
    timings: dict[str, list[float]] = {"mmtrain": [], "pycocoevalcap": []}
    for index in range(rounds):
        sides = (("mmtrain", ours_cmd), ("pycocoevalcap", theirs_cmd))
        for name, command in sides if index % 2 == 0 else sides[::-1]:
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env)
            timings[name].append(time.perf_counter() - start)
    ours, theirs = statistics.median(timings["mmtrain"]), statistics.median(timings["pycocoevalcap"])
    return {
        "mmtrain_command": "mmtrain eval results=RESULTS references=REFERENCES out=OUT meteor=false bootstrap=0",
        "mmtrain_s": round(ours, 3),
        "pycocoevalcap_s": round(theirs, 3),
        "mmtrain_rounds_s": [round(t, 3) for t in timings["mmtrain"]],
        "pycocoevalcap_rounds_s": [round(t, 3) for t in timings["pycocoevalcap"]],
        "speedup": round(theirs / ours, 1),
        "target_speedup": 5,
        "mmtrain_includes": "PTB tokenization, BLEU, ROUGE-L, CIDEr-D, diversity, 3 files (no METEOR, no intervals)",
    }


def time_meteor(tokens: dict, rounds: int) -> dict:
    """mmtrain's Python METEOR vs pycocoevalcap's jar, each started inside its timing, same tokenized input."""
    import numpy as np
    from pycocoevalcap.meteor.meteor import Meteor as JarMeteor

    from mmtrain.metrics.meteor.native import NativeMeteor

    gts, res = tokens["gts"], tokens["res"]
    keys = list(gts)
    times: dict[str, list[float]] = {"python": [], "jar": []}
    out: dict[str, tuple] = {}

    def python_side() -> tuple:
        return NativeMeteor(workers=1).score([gts[k] for k in keys], [res[k][0] for k in keys])

    def jar_side() -> tuple:
        scorer = JarMeteor()
        try:
            return scorer.compute_score({k: gts[k] for k in keys}, {k: res[k] for k in keys})
        finally:
            del scorer

    for index in range(rounds):
        sides = (("python", python_side), ("jar", jar_side))
        for name, side in sides if index % 2 == 0 else sides[::-1]:
            start = time.perf_counter()
            out[name] = side()
            times[name].append(time.perf_counter() - start)
    ours, theirs = np.asarray(out["python"][1]), np.asarray(out["jar"][1], dtype=float)
    differ = np.abs(ours - theirs) > 1e-6
    python_s, jar_s = statistics.median(times["python"]), statistics.median(times["jar"])
    return {
        "python_s": round(python_s, 3),
        "jar_s": round(jar_s, 3),
        "python_rounds_s": [round(t, 3) for t in times["python"]],
        "jar_rounds_s": [round(t, 3) for t in times["jar"]],
        "speedup": round(jar_s / python_s, 2),
        "target_speedup": 5,
        "corpus_python": float(out["python"][0]),
        "corpus_jar": float(out["jar"][0]),
        "corpus_difference": abs(float(out["python"][0]) - float(out["jar"][0])),
        "images_differing_over_1e-6": int(differ.sum()),
        "share_equal": float(1 - differ.mean()),
    }


def time_bootstrap(references: dict, candidates: dict, scoring_s: float) -> dict:
    """1,000-resample intervals of every metric, against the in-process scoring time."""
    from mmtrain.metrics.scores import score_captions
    from mmtrain.metrics.stats import bootstrap_ci

    scores = score_captions(references, candidates, meteor=False)
    start = time.perf_counter()
    bootstrap_ci(scores.image_scores(), resamples=1000, seed=0)
    seconds = time.perf_counter() - start
    return {"bootstrap_s": round(seconds, 3), "scoring_s": round(scoring_s, 3), "share": round(seconds / scoring_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per comparison (medians reported)")
    parser.add_argument("--no-meteor", action="store_true", help="leave out the METEOR comparison")
    parser.add_argument("--no-doc", action="store_true", help="print the JSON only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(json.dumps({"skipped": f"real data not found at {args.data} (needs ../shared/data)"}))
        return
    sys.path.insert(0, str(ROOT))
    references, candidates = build_corpus(args.data, args.images)
    ours_rounds, theirs_rounds = [], []
    for index in range(args.rounds):
        sides = [lambda: time_mmtrain(references, candidates), lambda: time_pycocoevalcap(references, candidates)]
        if index % 2:
            theirs_rounds.append(sides[1]())
            ours_rounds.append(sides[0]())
        else:
            ours_rounds.append(sides[0]())
            theirs_rounds.append(sides[1]())
    ours_s = _median_stages([r[0] for r in ours_rounds])
    theirs_s = _median_stages([r[0] for r in theirs_rounds])
    (_, ours, ours_tokens), (_, theirs, theirs_tokens) = ours_rounds[-1], theirs_rounds[-1]
    mismatched = sum(ours_tokens[k][key] != theirs_tokens[k][key] for k in ("gts", "res") for key in references)
    total_ours, total_theirs = ours_s["total"], theirs_s["total"]
    meteor = time_meteor(theirs_tokens, max(1, args.rounds - 1)) if not args.no_meteor else {"skipped": "--no-meteor"}
    bootstrap = time_bootstrap(references, candidates, total_ours)
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        whole = whole_process(references, candidates, Path(tmp), args.rounds)
    report = {
        "images": args.images,
        "references_per_image": 5,
        "rounds": args.rounds,
        "in_process": {
            "mmtrain_s": ours_s,
            "pycocoevalcap_s": theirs_s,
            "speedup": round(total_theirs / total_ours, 1),
            "target_speedup": 10,
            "scores": {"Bleu_4": ours["Bleu"][3], "ROUGE_L": ours["ROUGE_L"], "CIDEr": ours["CIDEr"]},
            "max_abs_score_difference": max_difference(ours, theirs),
            "identical": max_difference(ours, theirs) <= 1e-9 and mismatched == 0,
            "tokenization_mismatches": mismatched,
        },
        "meteor": meteor,
        "bootstrap": bootstrap,
        "whole_process": whole,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report, indent=2))
    if not args.no_doc:
        write_doc(report)


def write_doc(report: dict) -> None:
    """The run's rows as the "eval" section of docs/benchmarks.md."""
    from benchdoc import write_section

    inner, whole, meteor, boot = report["in_process"], report["whole_process"], report["meteor"], report["bootstrap"]
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
            "whole process, s: `mmtrain eval results=... meteor=false bootstrap=0` vs a pycocoevalcap script",
            whole["mmtrain_s"],
            whole["pycocoevalcap_s"],
            f"{whole['speedup']}x",
            f">= {whole['target_speedup']}x",
            whole["speedup"] >= whole["target_speedup"],
        ),
        (
            "bootstrap intervals, 1,000 resamples, s (peer: in-process scoring)",
            boot["bootstrap_s"],
            boot["scoring_s"],
            f"{boot['share']:.0%}",
            "<= 20%",
            boot["share"] <= 0.2,
        ),
    ]
    if "speedup" in meteor:
        rows.insert(
            1,
            (
                "METEOR in process, s: Python (one process) vs the 1.5 jar through pycocoevalcap (both started in the"
                " timing)",
                meteor["python_s"],
                meteor["jar_s"],
                f"{meteor['speedup']}x",
                f">= {meteor['target_speedup']}x",
                meteor["speedup"] >= meteor["target_speedup"],
            ),
        )
    stages = lambda times: " / ".join(f"{k} {v}" for k, v in times.items() if k != "total")  # noqa: E731
    meteor_note = (
        f" METEOR: corpus {meteor['corpus_python']:.6f} (Python) vs {meteor['corpus_jar']:.6f} (jar), difference"
        f" {meteor['corpus_difference']:.1e}; {meteor['images_differing_over_1e-6']} images differ by more than 1e-6."
        if "speedup" in meteor
        else ""
    )
    notes = (
        f"{report['images']:,} images x {report['references_per_image']} real COCO references (coco_fakecap_1000"
        f" captions, repeated under distinct ids); medians of {report['rounds']} rounds, sides alternating. Stages in"
        f" process, s: mmtrain {stages(ours)}; pycocoevalcap {stages(theirs)}. Every score equal to pycocoevalcap's"
        f" within 1e-9: {inner['identical']} (largest difference {inner['max_abs_score_difference']},"
        f" {inner['tokenization_mismatches']} tokenization mismatches).{meteor_note} The whole process of mmtrain"
        f" includes {whole['mmtrain_includes']}. Load average (1 min) at the end: {report['load_average_1min']} on"
        f" {report['cpus']} cores: the machine was shared, so absolute times are inflated; ratios are in one run."
    )
    write_section("eval", "Caption metrics against pycocoevalcap", report, rows, notes=notes)


if __name__ == "__main__":
    main()
