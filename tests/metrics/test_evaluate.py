"""evaluate_files and the Python API: golden numbers, output files, and the messages bad files get."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mmtrain.errors import UserError
from mmtrain.metrics import coco_caption_scores, evaluate_files
from mmtrain.metrics.evaluate import main

PUBLISHED = {"Bleu_1": 0.579, "Bleu_2": 0.404, "Bleu_3": 0.279, "Bleu_4": 0.191, "ROUGE_L": 0.396, "CIDEr": 0.600}
REFERENCES = {
    1: ["A dog runs on the grass.", "A brown dog running in a field."],
    2: ["A cat sleeps on a red sofa.", "A sleeping cat on a couch."],
    3: ["Two men play tennis.", "Men playing tennis on a court."],
}


def _write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def references_file(tmp_path: Path) -> Path:
    images = [{"id": image_id, "file_name": f"{image_id}.jpg"} for image_id in REFERENCES]
    annotations = [
        {"id": 10 * image_id + k, "image_id": image_id, "caption": caption}
        for image_id, captions in REFERENCES.items()
        for k, caption in enumerate(captions)
    ]
    return _write(tmp_path / "captions.json", {"images": images, "annotations": annotations})


def _results(tmp_path: Path, entries: list, name: str = "results.json") -> Path:
    return _write(tmp_path / name, entries)


GOOD = [
    {"image_id": 1, "caption": "a dog runs"},
    {"image_id": 2, "caption": "a cat"},
    {"image_id": 3, "caption": "men"},
]


@pytest.mark.realdata
def test_golden_fakecap_files(fakecap: Path, tmp_path: Path) -> None:
    results = fakecap / "captions_val2014_fakecap_results.json"
    metrics = evaluate_files(results, fakecap / "captions_val2014_subset1000.json", tmp_path, meteor=False)
    assert {name: round(metrics[name], 3) for name in PUBLISHED} == PUBLISHED
    assert metrics["bleu_counts"] == {
        "testlen": 9893,
        "reflen": 9855,
        "guess": [9893, 8893, 7893, 6893],
        "correct": [5732, 2510, 1043, 423],
    }
    assert metrics["n_images"] == 1000 and metrics["partial"] is False
    assert metrics["skipped"]["METEOR"] == "not requested (meteor=false)"
    assert "SPICE" in metrics["skipped"]
    low, high = metrics["ci95"]["CIDEr"]
    assert low < metrics["CIDEr"] < high and high - low < 0.1
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    rows = [json.loads(line) for line in (tmp_path / "per_image.jsonl").read_text().splitlines()]
    assert len(rows) == 1000 and rows[0]["image_id"] == 391895
    assert rows[0]["caption"] == "man holding a red umbrella in the rain"
    assert sum(row["CIDEr"] for row in rows) / 1000 == pytest.approx(metrics["CIDEr"])
    report = (tmp_path / "report.md").read_text()
    assert "| BLEU-1 | 0.579 |" in report and "| CIDEr-D | 0.600 |" in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "per_image.jsonl", "report.md"]


@pytest.mark.realdata
def test_golden_fakecap_api(fakecap: Path) -> None:
    data = json.loads((fakecap / "captions_val2014_subset1000.json").read_text())
    references: dict[int, list[str]] = {image["id"]: [] for image in data["images"]}
    for annotation in data["annotations"]:
        references[annotation["image_id"]].append(annotation["caption"])
    results = json.loads((fakecap / "captions_val2014_fakecap_results.json").read_text())
    scores = coco_caption_scores(references, {r["image_id"]: r["caption"] for r in results})
    assert list(scores) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"]
    assert {name: round(value, 3) for name, value in scores.items()} == PUBLISHED


def test_api_refuses_mismatched_ids() -> None:
    with pytest.raises(UserError, match=r"1 images have references but no candidate .*1 candidates have no references"):
        coco_caption_scores({1: ["a dog"], 2: ["a cat"]}, {1: "a dog", 5: "a bird"})


def test_outputs_on_a_small_set(tmp_path: Path, references_file: Path) -> None:
    metrics = evaluate_files(_results(tmp_path, GOOD), references_file, tmp_path / "out", meteor=False, bootstrap=50)
    assert metrics["n_images"] == 3
    assert set(metrics["ci95"]) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"}
    assert metrics["diversity"]["unique_captions"] == 1.0 and metrics["diversity"]["vocabulary"] == 5
    assert metrics["diversity"]["mean_length"] == pytest.approx(2.0)
    rows = (tmp_path / "out" / "per_image.jsonl").read_text().splitlines()
    assert [json.loads(row)["image_id"] for row in rows] == [1, 2, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"image_id": 1, "caption": "a"},\n {"image_id": 2 "caption": "b"}]', "invalid JSON at line 2 column 17"),
        ({"image_id": 1, "caption": "a"}, 'expected a JSON list of {"image_id", "caption"} objects, got a JSON object'),
        ({"annotations": []}, "looks like a COCO captions file"),
        ([{"image_id": 1, "caption": "a"}, "oops", {"caption": "b"}], "1 entries are not objects .*1 entries have no"),
        (
            [{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}, {"image_id": 2, "caption": " "}],
            r"1 captions are empty \(e.g. image 2\); 1 image ids appear more than once \(e.g. 1\)",
        ),
        ([{"image_id": i, "caption": 5} for i in range(1, 6)], r"5 captions are missing or not strings \(e.g. image 1"),
    ],
)
def test_bad_results_files_get_one_line_that_names_the_file(
    tmp_path: Path, references_file: Path, content: object, message: str
) -> None:
    results = _write(tmp_path / "bad.json", content)
    with pytest.raises(UserError, match=message) as caught:
        evaluate_files(results, references_file, tmp_path / "out", meteor=False)
    assert str(caught.value).startswith(f"{results}: ") and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_missing_and_extra_ids(tmp_path: Path, references_file: Path, caplog) -> None:
    entries = [GOOD[0], {"image_id": 7, "caption": "a bird"}, {"image_id": 8, "caption": "a car"}]
    results = _results(tmp_path, entries)
    with pytest.raises(UserError) as caught:
        evaluate_files(results, references_file, tmp_path / "out", meteor=False)
    assert str(caught.value) == (
        f"{results}: 2 of 3 reference images have no caption (e.g. 2, 3); 2 image ids are not in {references_file} "
        "(e.g. 7, 8); pass allow_partial=true to score only the 1 images in both"
    )
    with caplog.at_level(logging.WARNING, logger="mmtrain.metrics.evaluate"):
        metrics = evaluate_files(results, references_file, tmp_path / "out", meteor=False, allow_partial=True)
    assert metrics["partial"] == {"scored": 1, "missing": 2, "extra": 2} and metrics["n_images"] == 1
    assert "scoring only 1 images" in caplog.text
    assert "partial: 2 reference images without a caption" in (tmp_path / "out" / "report.md").read_text()


def test_string_ids_against_integer_ids_get_a_hint(tmp_path: Path, references_file: Path) -> None:
    results = _results(tmp_path, [{"image_id": str(e["image_id"]), "caption": e["caption"]} for e in GOOD])
    with pytest.raises(UserError, match="image ids differ in type"):
        evaluate_files(results, references_file, tmp_path / "out", meteor=False)


def test_comparison_of_two_results_files(tmp_path: Path, references_file: Path) -> None:
    better = [{"image_id": i, "caption": refs[0]} for i, refs in REFERENCES.items()]
    metrics = evaluate_files(
        _results(tmp_path, better, "better.json"),
        references_file,
        tmp_path / "out",
        compare=_results(tmp_path, GOOD),
        meteor=False,
        bootstrap=200,
    )
    comparison = metrics["comparison"]
    assert comparison["results"].endswith("results.json")
    assert comparison["diff"]["CIDEr"]["diff"] == pytest.approx(metrics["CIDEr"] - comparison["scores"]["CIDEr"])
    assert comparison["diff"]["CIDEr"]["diff"] > 0 and 0 <= comparison["diff"]["CIDEr"]["p_value"] <= 1
    assert "| Other | Difference |" in (tmp_path / "out" / "report.md").read_text()


def test_command_line(tmp_path: Path, references_file: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main([str(_results(tmp_path, GOOD)), str(references_file), str(out), "--meteor", "false"]) == 0
    assert "CIDEr" in capsys.readouterr().out and (out / "metrics.json").is_file()
    bad = _write(tmp_path / "bad.json", "[")
    assert main([str(bad), str(references_file), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: invalid JSON at line 1 column 2") and err.count("\n") == 1
