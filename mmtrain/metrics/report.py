"""The human-readable ``report.md`` of an evaluation: one table with confidence intervals, then the rest."""

from __future__ import annotations

from typing import Any

_LABELS = {
    "Bleu_1": "BLEU-1",
    "Bleu_2": "BLEU-2",
    "Bleu_3": "BLEU-3",
    "Bleu_4": "BLEU-4",
    "METEOR": "METEOR",
    "ROUGE_L": "ROUGE-L",
    "CIDEr": "CIDEr-D",
    "SPICE": "SPICE",
}


def _interval(values: list[float] | None) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]" if values else "-"


def _score_table(metrics: dict[str, Any]) -> list[str]:
    comparison = metrics.get("comparison")
    header = "| Metric | Score | 95% CI |"
    rule = "|---|---:|---|"
    if comparison:
        header += " Other | Difference | 95% CI of difference | p |"
        rule += "---:|---:|---|---:|"
    lines = [header, rule]
    for name, label in _LABELS.items():
        if name not in metrics:
            continue
        row = f"| {label} | {metrics[name]:.3f} | {_interval(metrics['ci95'].get(name))} |"
        if comparison and name in comparison["diff"]:
            diff = comparison["diff"][name]
            row += (
                f" {comparison['scores'][name]:.3f} | {diff['diff']:+.3f} | {_interval(diff['ci95'])} |"
                f" {diff['p_value']:.3f} |"
            )
        lines.append(row)
    return lines


def render_report(metrics: dict[str, Any]) -> str:
    """Markdown for a ``metrics.json`` dictionary (as :func:`mmtrain.metrics.evaluate.evaluate_files` writes it)."""
    lines = ["# Caption metrics", ""]
    lines.append(f"- Results: `{metrics['results']}`")
    lines.append(f"- References: `{metrics['references']}`")
    scope = f"- Images scored: {metrics['n_images']}"
    partial = metrics.get("partial")
    if partial:
        scope += f" (partial: {partial['missing']} reference images without a caption, {partial['extra']} extra ids)"
    lines += [scope, ""]
    if metrics.get("comparison"):
        lines += [f"Compared with `{metrics['comparison']['results']}` (paired bootstrap over the same images).", ""]
    lines += _score_table(metrics)
    boot = metrics.get("bootstrap", {})
    lines += [
        "",
        f"Intervals: percentile bootstrap over images, {boot.get('resamples')} resamples, seed {boot.get('seed')}.",
    ]
    if metrics.get("skipped"):
        lines += ["", "## Not computed", ""]
        lines += [f"- {_LABELS.get(name, name)}: {reason}" for name, reason in metrics["skipped"].items()]
    div = metrics.get("diversity")
    if div:
        lines += ["", "## Diversity", "", "| Unique captions | Distinct-1 | Distinct-2 | Vocabulary | Mean length |"]
        lines += ["|---:|---:|---:|---:|---:|"]
        lines.append(
            f"| {div['unique_captions']:.3f} | {div['distinct_1']:.3f} | {div['distinct_2']:.3f} |"
            f" {div['vocabulary']} | {div['mean_length']:.2f} |"
        )
    counts = metrics.get("bleu_counts")
    if counts:
        lines += [
            "",
            f"BLEU counts: testlen {counts['testlen']}, reflen {counts['reflen']}, correct {counts['correct']}.",
        ]
    return "\n".join(lines) + "\n"
