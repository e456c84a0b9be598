"""Score a COCO results file against a COCO captions file and write metrics.json, per_image.jsonl and report.md.

Run as ``python -m mmtrain.metrics.evaluate RESULTS REFERENCES OUT_DIR`` (see ``--help``); it imports no torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from mmtrain.errors import UserError
from mmtrain.io import write_json, write_jsonl, write_text
from mmtrain.metrics.coco_files import load_references, load_results, match_ids
from mmtrain.metrics.report import render_report
from mmtrain.metrics.scores import CaptionScores, meteor_backend, score_captions
from mmtrain.metrics.spice import spice_unavailable_reason
from mmtrain.metrics.stats import bootstrap_ci, diversity, paired_bootstrap

logger = logging.getLogger(__name__)


def _meteor_choice(meteor: bool | str) -> tuple[str | None, str | None]:
    """The METEOR implementation to run (python, java) or None, and why not when it is skipped."""
    return meteor_backend(meteor)


def _comparison(
    main: CaptionScores, other: CaptionScores, path: str | Path, resamples: int, seed: int
) -> dict[str, Any]:
    diffs = paired_bootstrap(main.image_scores(), other.image_scores(), resamples=resamples, seed=seed)
    return {"results": str(path), "scores": other.scores, "diff": diffs}


def _per_image_rows(scores: CaptionScores, captions: dict[Hashable, str]) -> list[dict[str, Any]]:
    rows = []
    for index, image_id in enumerate(scores.image_ids):
        row: dict[str, Any] = {"image_id": image_id, "caption": captions[image_id]}
        row.update({name: float(values[index]) for name, values in scores.per_image.items()})
        rows.append(row)
    return rows


def evaluate_files(
    results: str | Path,
    references: str | Path,
    out_dir: str | Path,
    *,
    allow_partial: bool = False,
    compare: str | Path | None = None,
    meteor: bool | str = "auto",
    spice_jar: str | Path | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score a results file and write ``metrics.json``, ``per_image.jsonl`` and ``report.md`` into ``out_dir``.

    Args:
        results: COCO results file, ``[{"image_id": ..., "caption": ...}]``.
        references: COCO captions file (``images``, ``annotations``).
        out_dir: Where to write the three files (created if needed; each written atomically).
        allow_partial: Score only the images present in both files instead of refusing (noted in the output).
        compare: A second results file for the same references: adds a paired-bootstrap comparison.
        meteor: "python" (no Java), "java" (the jar), "auto" (Python when pycocoevalcap's METEOR data is there,
            else the jar when Java is, else skipped with the reason), True (auto, but required), False to skip.
        spice_jar: Path to a SPICE jar with its models; SPICE is skipped (with the reason) otherwise.
        bootstrap: Bootstrap resamples for the 95% intervals (0 for none).
        seed: Seed of the bootstrap.

    Returns:
        The ``metrics.json`` content.
    """
    captions = load_results(results)
    reference_map = load_references(references)
    other_captions = load_results(compare) if compare is not None else None
    image_ids, partial = _select_images(
        captions, other_captions, reference_map, (results, references, compare), allow_partial
    )
    run_meteor, meteor_reason = _meteor_choice(meteor)
    refs = {k: reference_map[k] for k in image_ids}
    scores = score_captions(refs, {k: captions[k] for k in image_ids}, meteor=run_meteor, spice_jar=spice_jar)
    metrics = _metrics(scores, meteor_reason, spice_jar, bootstrap, seed)
    metrics.update(n_images=len(image_ids), partial=partial or False, results=str(results), references=str(references))
    if run_meteor is not None:
        metrics["meteor_implementation"] = run_meteor
    if other_captions is not None:
        other = score_captions(refs, {k: other_captions[k] for k in image_ids}, meteor=run_meteor, spice_jar=spice_jar)
        metrics["comparison"] = _comparison(scores, other, compare, bootstrap, seed)
    out = Path(out_dir)
    write_json(out / "metrics.json", metrics)
    write_jsonl(out / "per_image.jsonl", _per_image_rows(scores, captions))
    write_text(out / "report.md", render_report(metrics))
    return metrics


def _select_images(
    captions: dict[Hashable, str],
    other_captions: dict[Hashable, str] | None,
    references: dict[Hashable, list[str]],
    paths: tuple[str | Path, str | Path, str | Path | None],
    allow_partial: bool,
) -> tuple[list[Hashable], dict[str, int] | None]:
    """The images to score (captioned by every results file) and, when that is not all of them, a summary."""
    results_path, references_path, compare_path = paths
    image_ids, partial = match_ids(captions, references, results_path, references_path, allow_partial=allow_partial)
    if other_captions is not None:
        other_ids, other_partial = match_ids(
            other_captions, references, compare_path, references_path, allow_partial=allow_partial
        )
        if other_partial is not None:
            keep = set(other_ids)
            image_ids = [k for k in image_ids if k in keep]
            extra = (partial or {}).get("extra", 0) + other_partial["extra"]
            partial = {"scored": len(image_ids), "missing": len(references) - len(image_ids), "extra": extra}
            if not image_ids:
                raise UserError(f"{compare_path}: no image has a caption in both results files")
    if partial:
        logger.warning(
            "warning: scoring only %d images present in both %s and %s (allow_partial)",
            len(image_ids),
            results_path,
            references_path,
        )
    return image_ids, partial


def _metrics(
    scores: CaptionScores, meteor_reason: str | None, spice_jar: str | Path | None, bootstrap: int, seed: int
) -> dict[str, Any]:
    """The metrics.json content of one system: scores, skipped metrics, counts, intervals, diversity."""
    skipped = {"METEOR": meteor_reason} if meteor_reason else {}
    if spice_jar is None:
        skipped["SPICE"] = spice_unavailable_reason(None)
    skipped.update(scores.skipped)
    intervals = bootstrap_ci(scores.image_scores(), resamples=bootstrap, seed=seed)
    metrics: dict[str, Any] = dict(scores.scores)
    metrics.update(
        skipped=skipped,
        bleu_counts=scores.bleu_counts.totals(),
        ci95={name: interval for name in scores.scores if (interval := intervals.get(name)) is not None},
        bootstrap={"resamples": bootstrap, "seed": seed, "level": 0.95},
        diversity=diversity(scores.tokens),
    )
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m mmtrain.metrics.evaluate RESULTS REFERENCES OUT_DIR [options]``."""
    parser = argparse.ArgumentParser(prog="python -m mmtrain.metrics.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("results", help="COCO results file: [{image_id, caption}]")
    parser.add_argument("references", help="COCO captions file (images, annotations)")
    parser.add_argument("out", help="output folder for metrics.json, per_image.jsonl, report.md")
    parser.add_argument("--allow-partial", action="store_true", help="score the images present in both files")
    parser.add_argument("--compare", help="a second results file to compare against (paired bootstrap)")
    parser.add_argument("--meteor", choices=["auto", "python", "java", "true", "false"], default="auto")
    parser.add_argument("--spice-jar", help="path to spice-1.0.jar with Stanford CoreNLP models in lib/")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(message)s")
    meteor = args.meteor
    try:
        metrics = evaluate_files(
            args.results,
            args.references,
            args.out,
            allow_partial=args.allow_partial,
            compare=args.compare,
            meteor=meteor,
            spice_jar=args.spice_jar,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    names = [n for n in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE") if n in metrics]
    print("  ".join(f"{n} {metrics[n]:.3f}" for n in names) + f"  ({metrics['n_images']} images) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
