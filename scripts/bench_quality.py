"""Benchmark quality on the built-in dataset: the shapes recipes of every fusion, SCST and joint ITC; prints JSON.

Each run is the real command line: ``mmtrain fit experiment=NAME seed=S`` on one shapes store, then ``mmtrain eval``
of its best checkpoint on the test split. The fit is timed from process start to exit, so the figure is what a user
waits for. Per run the JSON has the fit time, test scene accuracy, CIDEr-D and the val scene accuracy curve, and
whether the target holds; per experiment, the mean and the worst over the seeds; and each fusion's mean scene
accuracy as a ratio of cross-attention's in the same run (the peer every captioning toolkit has).

Targets (the issue's):
- every fusion (cross-attention, prefix, early fusion): test scene accuracy >= 0.90 within a 600 s fit;
- SCST (``shapes_scst``, started from the cross-attention run of the same seed): test CIDEr-D above its start;
- joint ITC (``shapes_itc``): test image->text R@5 >= 0.80.

One seed of the three fusions, SCST and ITC take about 45 minutes on 2 CPU cores; runs never overlap, as a second
job on the cores would change every fit time. The JSON is also written to ``OUT/quality.json``, and its table to
the "quality" section of ``docs/benchmarks.md`` (``--no-doc`` leaves the page alone; ``--from-json`` writes the
section again from an earlier run's JSON without running anything).

Usage: python scripts/bench_quality.py [--seeds 0 1 2] [--only fusions scst itc] [--out runs/bench/quality] [--store S]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from mmtrain.io import write_json
from mmtrain.runinfo import hardware

ROOT = Path(__file__).resolve().parents[1]
FUSIONS = {"cross_attention": "shapes_demo", "prefix": "shapes_prefix", "concat": "shapes_concat"}
SCENE_TARGET, FIT_BUDGET_S, R5_TARGET = 0.90, 600.0, 0.80


def mmtrain(*args: str, log: Path) -> float:
    """Run one ``mmtrain`` command with its output in ``log``; return its wall-clock seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "mmtrain.cli", *args], cwd=ROOT, stdout=handle, stderr=handle)
    if done.returncode:
        sys.exit(f"bench_quality: `mmtrain {' '.join(args)}` failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def ensure_store(out: Path) -> Path:
    """The full shapes dataset, preprocessed once through the CLI."""
    store = out / "data"
    if not (store / "manifest.json").is_file():
        mmtrain("preprocess", "data=shapes", f"data.root={out / 'raw'}", f"out={store}", log=out / "preprocess.log")
    return store


def val_curve(fit_dir: Path) -> list[list[float]]:
    """[[step, val scene accuracy], ...] from the run's CSV log."""
    (path,) = fit_dir.glob("logs/**/metrics.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [[int(r["step"]), round(float(r["val/scene_accuracy"]), 3)] for r in rows if r.get("val/scene_accuracy")]


def fit_and_eval(name: str, experiment: str, seed: int, store: Path, out: Path, *extra: str) -> dict:
    """Fit ``experiment`` with ``seed``, evaluate its best checkpoint on test, and summarise both."""
    run = out / f"{name}_seed{seed}"
    fit_dir, eval_dir = run / "fit", run / "eval"
    overrides = [f"experiment={experiment}", f"seed={seed}", f"data.store={store}", f"out={fit_dir}", *extra]
    print(f"bench_quality: fit {name} seed={seed}", file=sys.stderr, flush=True)
    fit_s = mmtrain("fit", *overrides, log=run / "fit.out")
    ckpt = fit_dir / "checkpoints" / "best.ckpt"
    mmtrain(
        "eval", f"ckpt={ckpt}", "split=test", f"out={eval_dir}", "bootstrap=0", "meteor=false", log=run / "eval.out"
    )
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    result = {
        "experiment": experiment,
        "seed": seed,
        "fit_s": round(fit_s, 1),
        "scene_accuracy": round(metrics["scene_accuracy"], 4),
        "CIDEr": round(metrics["CIDEr"], 4),
        "val_scene_accuracy": val_curve(fit_dir),
        "checkpoint": str(ckpt),
    }
    for key in ("i2t_R@1", "i2t_R@5", "t2i_R@1", "t2i_R@5"):
        if key in metrics:
            result[key] = round(metrics[key], 4)
    return result


def summarise(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    return {"mean": round(sum(values) / len(values), 4), "worst": min(values), "met": sum(r["met"] for r in runs)}


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60):.0f} s"


def doc_rows(report: dict) -> list[tuple]:
    """One row per run: (what, mmtrain, peer, ratio, target, met); the peer of a fusion is cross-attention's run."""
    rows = []
    fusions = report.get("fusions", {})
    peers = {run["seed"]: run["scene_accuracy"] for run in fusions.get("cross_attention", {}).get("runs", [])}
    target = f">= {SCENE_TARGET} in a {FIT_BUDGET_S:.0f} s fit"
    for name, summary in fusions.items():
        for run in summary["runs"]:
            what = (
                f"`{run['experiment']}` ({name}), seed {run['seed']}: test scene accuracy, fit {minutes(run['fit_s'])}"
            )
            peer = None if name == "cross_attention" else peers.get(run["seed"])
            ratio = f"{run['scene_accuracy'] / peer:.2f}" if peer else None
            rows.append((what, run["scene_accuracy"], peer, ratio, target, run["met"]))
    for run in report.get("scst", {}).get("runs", []):
        what = f"`shapes_scst` from cross-attention, seed {run['seed']}: test CIDEr-D, fit {minutes(run['fit_s'])}"
        rows.append(
            (what, run["CIDEr"], run["CIDEr_start"], f"{run['ratio_to_start']:.2f}", "above its start", run["met"])
        )
    for run in report.get("itc", {}).get("runs", []):
        what = f"`shapes_itc`, seed {run['seed']}: test image->text R@5, fit {minutes(run['fit_s'])}"
        rows.append((what, run["i2t_R@5"], None, None, f">= {R5_TARGET}", run["met"]))
    return rows


def doc_notes(report: dict) -> str:
    """Means and worst values over the seeds, and how the runs were made."""
    parts = []
    for name, summary in report.get("fusions", {}).items():
        parts.append(f"{name} mean {summary['mean']} (worst {summary['worst']}, target met {summary['met']} times)")
    for key, figure in (("scst", "test CIDEr-D"), ("itc", "image->text R@5")):
        if key in report:
            parts.append(f"{key} mean {figure} {report[key]['mean']} (worst {report[key]['worst']})")
    seeds = ", ".join(map(str, report["seeds"]))
    return (
        f"Started {report.get('started', 'at an unrecorded time')}; seeds {seeds}. Each run is `mmtrain fit experiment=NAME seed=S` on the full shapes store (12,000 / 250 / 500"
        " images), timed from process start to exit, then `mmtrain eval` of its best checkpoint (by val scene"
        " accuracy) on the 500 test images with greedy decoding. The peer of each fusion is the cross-attention run"
        " of the same seed. Over the seeds: " + "; ".join(parts) + "."
    )


def write_doc(report: dict) -> None:
    from benchdoc import write_section

    write_section(
        "quality", "Quality on shapes: every fusion, SCST and ITC", report, doc_rows(report), notes=doc_notes(report)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run every experiment with")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["fusions", "scst", "itc"],
        default=["fusions", "scst", "itc"],
        help="which targets to measure (default: all)",
    )
    parser.add_argument("--fusions", nargs="+", choices=list(FUSIONS), default=list(FUSIONS), help="fusions to fit")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/quality"), help="runs and quality.json")
    parser.add_argument("--store", type=Path, help="an existing store of data=shapes (default: preprocess one in OUT)")
    parser.add_argument("--no-doc", action="store_true", help="print the JSON only; leave docs/benchmarks.md alone")
    parser.add_argument("--from-json", type=Path, help="write the docs section from an earlier quality.json; no runs")
    args = parser.parse_args()
    if args.from_json:
        write_doc(json.loads(args.from_json.read_text(encoding="utf-8")))
        return
    if "scst" in args.only and ("fusions" not in args.only or "cross_attention" not in args.fusions):
        parser.error(
            "SCST starts from the cross-attention run: keep 'fusions' in --only and cross_attention in --fusions"
        )
    out = args.out if args.out.is_absolute() else ROOT / args.out
    store = args.store.resolve() if args.store else ensure_store(out)
    report: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": hardware(),
        "targets": {"scene_accuracy": SCENE_TARGET, "fit_budget_s": FIT_BUDGET_S, "itc_i2t_R@5": R5_TARGET},
        "seeds": args.seeds,
    }
    fusions: dict[str, list[dict]] = {}
    if "fusions" in args.only:
        for fusion in args.fusions:
            for seed in args.seeds:
                run = fit_and_eval(fusion, FUSIONS[fusion], seed, store, out)
                run["met"] = run["scene_accuracy"] >= SCENE_TARGET and run["fit_s"] <= FIT_BUDGET_S
                fusions.setdefault(fusion, []).append(run)
        report["fusions"] = {
            name: {"runs": runs, **summarise(runs, "scene_accuracy")} for name, runs in fusions.items()
        }
        if "cross_attention" in fusions:
            peer = report["fusions"]["cross_attention"]["mean"]
            for summary in report["fusions"].values():
                summary["ratio_to_cross_attention"] = round(summary["mean"] / peer, 3) if peer else None
    if "scst" in args.only:
        runs = []
        for start in fusions["cross_attention"]:
            run = fit_and_eval("scst", "shapes_scst", start["seed"], store, out, f"init_from={start['checkpoint']}")
            run["CIDEr_start"], run["met"] = start["CIDEr"], run["CIDEr"] > start["CIDEr"]
            run["ratio_to_start"] = round(run["CIDEr"] / start["CIDEr"], 3)
            runs.append(run)
        report["scst"] = {"runs": runs, **summarise(runs, "CIDEr")}
    if "itc" in args.only:
        runs = []
        for seed in args.seeds:
            run = fit_and_eval("itc", "shapes_itc", seed, store, out)
            run["met"] = run["i2t_R@5"] >= R5_TARGET
            runs.append(run)
        report["itc"] = {"runs": runs, **summarise(runs, "i2t_R@5")}
    write_json(out / "quality.json", report)
    print(json.dumps(report, indent=2))
    if not args.no_doc:
        write_doc(report)


if __name__ == "__main__":
    main()
