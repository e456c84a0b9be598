"""Validation monitors: unique-caption ratio, mean length and the collapse warning, in the metrics and the fit log."""

from __future__ import annotations

import csv
import logging

from mmtrain.training.validation import gather_candidates, validation_metrics

REFERENCES = {i: [f"a red circle left of a blue square {i}", "a red circle"] for i in range(20)}


def test_collapsed_captions_are_reported_and_warned(caplog):
    collapsed = {i: "a red circle" for i in range(20)}
    with caplog.at_level(logging.WARNING, logger="mmtrain.training.validation"):
        metrics = validation_metrics(collapsed, REFERENCES, None)
    assert metrics["unique_ratio"] == 1 / 20
    assert metrics["mean_length"] == 3.0
    assert "caption collapse: only 5.0% of validation captions are distinct" in caplog.text


def test_diverse_captions_raise_no_warning(caplog):
    diverse = {i: f"a red circle number {i}" for i in range(20)}
    with caplog.at_level(logging.WARNING, logger="mmtrain.training.validation"):
        metrics = validation_metrics(diverse, REFERENCES, None)
    assert metrics["unique_ratio"] == 1.0 and metrics["mean_length"] == 5.0
    assert metrics["CIDEr"] > 0
    assert "collapse" not in caplog.text


def test_single_process_gather_keeps_the_captions():
    assert gather_candidates({3: "b", 1: "a"}) == {1: "a", 3: "b"}


def test_fit_logs_the_monitors(tiny_checkpoint):
    with open(tiny_checkpoint.parents[1] / "logs" / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/unique_ratio")]
    assert rows, "no validation row in metrics.csv"
    for row in rows:
        assert 0.0 < float(row["val/unique_ratio"]) <= 1.0
        assert 0.0 <= float(row["val/mean_length"]) <= 32
