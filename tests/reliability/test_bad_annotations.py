"""Annotation files: a broken one stops preprocess with one line naming the file and the fault; odd entries (captions
of unlisted images, file names outside the image root) are recorded and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmtrain.data.sources.coco import CocoCaptions
from mmtrain.errors import UserError
from tests.reliability import zoo
from tests.reliability.conftest import assert_one_line_error

GOOD_IMAGES = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}]
GOOD_ANNOTATIONS = [{"id": 1, "image_id": 1, "caption": "a dog"}, {"id": 2, "image_id": 2, "caption": "a cat"}]

CASES = {
    "invalid JSON": (b'{"images": [], "annotations": [', "invalid JSON at line 1 column 32"),
    "not UTF-8": (b'{"images": [], "annotations": [{"caption": "caf\xe9"}]}', "not UTF-8 text"),
    "no annotations key": ({"images": GOOD_IMAGES}, "not a COCO captions file (needs keys ['images', 'annotations']"),
    "image without file_name": (
        {"images": [{"id": 1}], "annotations": GOOD_ANNOTATIONS},
        "every entry of 'images' needs 'id' and 'file_name'",
    ),
    "annotation without caption": (
        {"images": GOOD_IMAGES, "annotations": [{"id": 1, "image_id": 1}]},
        "every annotation needs 'image_id' and 'caption'",
    ),
    "duplicate image ids": (
        {"images": [*GOOD_IMAGES, {"id": 2, "file_name": "c.jpg"}], "annotations": GOOD_ANNOTATIONS},
        "1 duplicate image ids, e.g. [2]",
    ),
    "a list, not an object": ([1, 2], "not a COCO captions file"),
}


def _write_annotations(root: Path, content) -> Path:
    path = root / "annotations" / "captions_train2017.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return path


@pytest.mark.parametrize("case", CASES)
def test_a_broken_annotation_file_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    content, message = CASES[case]
    path = _write_annotations(tmp_path, content)
    with pytest.raises(UserError) as caught:
        CocoCaptions(root=str(tmp_path), splits={"train": "train"}).read()
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_missing_annotation_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"captions_val2017\.json: annotation file not found"):
        CocoCaptions(root=str(tmp_path), splits={"val": "val"}).read()


def test_preprocess_stops_on_a_broken_file_with_exit_1_and_writes_no_store(tmp_path: Path, cli) -> None:
    path = _write_annotations(tmp_path / "raw", CASES["duplicate image ids"][0])
    code, stderr = cli("preprocess", *zoo.PREPROCESS_ARGS, f"data.root={tmp_path / 'raw'}", f"out={tmp_path / 'store'}")
    assert_one_line_error(code, stderr, str(path), "duplicate image ids")
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_captions_of_unknown_images_and_escaping_paths_are_recorded_not_used(zoo_store) -> None:
    root, store, result = zoo_store
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["source"]["captions_for_unknown_images"] == 1
    rows = [json.loads(line) for line in (store / "rejected.jsonl").read_text().splitlines()]
    escaping = {row["file"]: row["reason"] for row in rows if row["reason"].startswith("path_escapes_root")}
    assert sorted(escaping) == sorted(zoo.ESCAPING)
    references = (store / "references_train.json").read_text()
    assert "not listed" not in references and "outside" not in references and "hostname" not in references
