"""Results files given to ``mmtrain eval results=...``: broken JSON, missing, extra or duplicate image ids."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.reliability.conftest import assert_one_line_error

REFERENCES = {
    "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
    "annotations": [{"id": 1, "image_id": 1, "caption": "a dog"}, {"id": 2, "image_id": 2, "caption": "a cat"}],
}
CASES = {
    "missing id": ([{"image_id": 1, "caption": "a dog"}], "1 of 2 reference images have no caption (e.g. 2)"),
    "extra id": (
        [{"image_id": i, "caption": "a dog"} for i in (1, 2, 7)],
        "1 image ids are not in",
    ),
    "duplicate id": (
        [{"image_id": 1, "caption": "a dog"}, {"image_id": 1, "caption": "a cat"}, {"image_id": 2, "caption": "x"}],
        "1 image ids appear more than once (e.g. 1)",
    ),
}


def test_bad_results_file_is_one_line_with_exit_1(tmp_path):
    (tmp_path / "refs.json").write_text(json.dumps(REFERENCES))
    (tmp_path / "res.json").write_text('[{"image_id": 1, "caption": "a dog"')
    result = run_cli(
        "eval",
        f"results={tmp_path / 'res.json'}",
        f"references={tmp_path / 'refs.json'}",
        f"out={tmp_path / 'out'}",
        "meteor=false",
    )
    assert_one_line_error(result.returncode, result.stderr, "res.json", "invalid JSON")


@pytest.mark.parametrize("case", CASES)
def test_missing_extra_or_duplicate_ids_are_one_line_and_nothing_is_scored(tmp_path, cli, case):
    entries, message = CASES[case]
    (tmp_path / "refs.json").write_text(json.dumps(REFERENCES))
    (tmp_path / "res.json").write_text(json.dumps(entries))
    refs, res = tmp_path / "refs.json", tmp_path / "res.json"
    code, stderr = cli("eval", f"results={res}", f"references={refs}", f"out={tmp_path / 'out'}", "meteor=false")
    assert_one_line_error(code, stderr, f"{res}: ", message)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_allow_partial_scores_the_shared_ids_and_says_so(tmp_path, cli):
    (tmp_path / "refs.json").write_text(json.dumps(REFERENCES))
    (tmp_path / "res.json").write_text(json.dumps(CASES["extra id"][0][1:]))  # ids 2 and 7
    refs, res, out = tmp_path / "refs.json", tmp_path / "res.json", tmp_path / "out"
    code, stderr = cli(
        "eval", f"results={res}", f"references={refs}", f"out={out}", "meteor=false", "allow_partial=true"
    )
    assert code == 0, stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["partial"] == {"scored": 1, "missing": 1, "extra": 1} and metrics["n_images"] == 1
