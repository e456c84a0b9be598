"""data=shapes: the files a COCO reader sees, the captions, the scene checker and what the pixels show."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmtrain.data.shapes import (
    Scene,
    Shape,
    generate_shapes,
    load_scenes,
    parse_caption,
    scene_accuracy,
    scene_matches,
)
from mmtrain.data.shapes.render import PALETTE
from mmtrain.errors import UserError

SPLITS = {"train": 200, "val": 60, "test": 40}
SIZE = 128
RED_CIRCLE = Shape(colour="red", size="small", kind="circle")
BLUE_SQUARE = Shape(colour="blue", size="large", kind="square")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, splits=SPLITS, image_size=SIZE, seed=0, show_progress=False)
    return root


def _coco(root: Path, split: str) -> dict:
    return json.loads((root / "annotations" / f"captions_{split}2017.json").read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- the files -----------------------------------------------------------------------------------------------------


def test_layout_is_a_coco_captions_download(dataset: Path) -> None:
    image_ids, annotation_ids = set(), set()
    for split, count in SPLITS.items():
        coco = _coco(dataset, split)
        assert set(coco) == {"info", "licenses", "images", "annotations"}
        assert len(coco["images"]) == count and len(coco["annotations"]) == 5 * count
        ids = {image["id"] for image in coco["images"]}
        assert all({"id", "file_name", "width", "height"} <= set(image) for image in coco["images"])
        assert all(set(ann) == {"id", "image_id", "caption"} and ann["image_id"] in ids for ann in coco["annotations"])
        assert not ids & image_ids, "image ids must be unique across splits"
        image_ids |= ids
        annotation_ids |= {ann["id"] for ann in coco["annotations"]}
        folder = dataset / f"{split}2017"
        assert sorted(p.name for p in folder.iterdir()) == sorted(image["file_name"] for image in coco["images"])
        for image in coco["images"]:
            assert re.fullmatch(r"\d{12}\.jpg", image["file_name"])
            with Image.open(folder / image["file_name"]) as decoded:
                assert decoded.format == "JPEG" and decoded.mode == "RGB"
                assert decoded.size == (image["width"], image["height"]) == (SIZE, SIZE)
    assert len(annotation_ids) == 5 * sum(SPLITS.values())


def test_pycocotools_reads_the_annotations(dataset: Path) -> None:
    coco_api = pytest.importorskip("pycocotools.coco")
    coco = coco_api.COCO(str(dataset / "annotations" / "captions_val2017.json"))
    image_id = coco.getImgIds()[0]
    assert len(coco.loadAnns(coco.getAnnIds(imgIds=image_id))) == 5


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    splits = {"train": 12, "val": 4}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        generate_shapes(tmp_path / name, splits=splits, seed=seed, show_progress=False)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a["annotations/captions_train2017.json"] != c["annotations/captions_train2017.json"]
    assert a["train2017/000000000001.jpg"] != c["train2017/000000000001.jpg"]


def test_rerun_with_same_parameters_touches_nothing(tmp_path: Path) -> None:
    first = generate_shapes(tmp_path, splits={"train": 6, "val": 2}, show_progress=False)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    again = generate_shapes(tmp_path, splits={"train": 6, "val": 2}, show_progress=False)
    assert first["generated"] and not again["generated"]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    assert again["splits"]["train"]["num_captions"] == 30


def test_other_parameters_or_missing_files_regenerate(tmp_path: Path) -> None:
    generate_shapes(tmp_path, splits={"train": 6, "val": 2}, show_progress=False)
    (tmp_path / "train2017" / "000000000003.jpg").unlink()
    assert generate_shapes(tmp_path, splits={"train": 6, "val": 2}, show_progress=False)["generated"]
    assert (tmp_path / "train2017" / "000000000003.jpg").is_file()
    generate_shapes(tmp_path, splits={"train": 3}, seed=1, show_progress=False)
    assert not (tmp_path / "val2017").exists()
    assert len(list((tmp_path / "train2017").iterdir())) == 3
    assert json.loads((tmp_path / "shapes.json").read_text())["params"]["seed"] == 1


def test_refuses_a_folder_that_is_not_a_shapes_dataset(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        generate_shapes(tmp_path, splits={"train": 2}, show_progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"captions_per_image": 0}, "captions_per_image"),
        ({"captions_per_image": 9}, "captions_per_image"),
        ({"image_size": 16}, "image_size"),
        ({"splits": {"Train/x": 2}}, "split name"),
        ({"splits": {"train": -1}}, "whole number"),
        ({"splits": {}}, "splits is empty"),
    ],
)
def test_bad_parameters_are_user_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        generate_shapes(tmp_path / "out", show_progress=False, **kwargs)


# --- scenes and captions -------------------------------------------------------------------------------------------


def test_every_caption_parses_back_to_its_own_scene(dataset: Path) -> None:
    for split in SPLITS:
        scenes = load_scenes(dataset / "annotations" / f"scenes_{split}2017.json")
        captions: dict[int, list[str]] = {}
        for ann in _coco(dataset, split)["annotations"]:
            assert parse_caption(ann["caption"]) == scenes[ann["image_id"]], ann["caption"]
            captions.setdefault(ann["image_id"], []).append(ann["caption"])
        for image_id, texts in captions.items():
            assert len(set(texts)) == 5, "captions of one image are phrased differently"
            relation = scenes[image_id].relation
            if relation is not None:  # both reading directions appear
                words = {"left of": ("left", "right"), "above": ("above", "below")}[relation]
                assert all(any(word in text for text in texts) for word in words), texts


def test_scene_distribution(dataset: Path) -> None:
    scenes = list(load_scenes(dataset / "annotations" / "scenes_train2017.json").values())
    one = sum(len(scene.objects) == 1 for scene in scenes) / len(scenes)
    assert 0.2 < one < 0.5
    shapes = [shape for scene in scenes for shape in scene.objects]
    assert {s.colour for s in shapes} == set(PALETTE) and {s.size for s in shapes} == {"small", "large"}
    assert {s.kind for s in shapes} == {"circle", "square", "triangle"}
    assert all(scene.objects[0] != scene.objects[1] for scene in scenes if len(scene.objects) == 2)
    assert {scene.relation for scene in scenes} == {None, "left of", "above"}


def test_relation_is_symmetric() -> None:
    assert Scene((RED_CIRCLE, BLUE_SQUARE), "left of") == Scene((BLUE_SQUARE, RED_CIRCLE), "right of")
    assert Scene((RED_CIRCLE, BLUE_SQUARE), "above") == Scene((BLUE_SQUARE, RED_CIRCLE), "below")
    assert Scene((RED_CIRCLE, BLUE_SQUARE), "left of") != Scene((RED_CIRCLE, BLUE_SQUARE), "right of")
    assert Scene((RED_CIRCLE, BLUE_SQUARE), "left of") != Scene((RED_CIRCLE, BLUE_SQUARE), "above")


READINGS = {  # every phrasing says: a small red circle <relation> a large blue square
    "left of": (
        "a small red circle to the left of a large blue square",
        "a large blue square to the right of a small red circle",
        "a small red circle is left of a large blue square",
        "there is a large blue square and a small red circle to its left",
        "a small red circle with a large blue square to its right",
        "A picture of a large blue square to the right of a small red circle.",
    ),
    "above": (
        "a small red circle above a large blue square",
        "a large blue square below a small red circle",
        "there is a large blue square and a small red circle above it",
        "a small red circle with a large blue square below it",
        "A large blue square is below a small red circle.",
    ),
}


@pytest.mark.parametrize("relation", READINGS)
def test_every_phrasing_of_a_relation_reads_the_same(relation: str) -> None:
    assert {parse_caption(text) for text in READINGS[relation]} == {Scene((RED_CIRCLE, BLUE_SQUARE), relation)}


def test_parse_ignores_case_spaces_and_period() -> None:
    for caption in [
        "a small red circle",
        "  A Small  RED circle. ",
        "there is a small red circle .",
        "A single small red circle",
    ]:
        assert parse_caption(caption) == Scene((RED_CIRCLE,)), caption


@pytest.mark.parametrize(
    "caption",
    [
        "",
        "a small orange circle",
        "a red circle",
        "a red small circle",
        "a small red circle next to a large blue square",
        "a small red circle to the left of",
        "a small red circle and a large blue square",
    ],
)
def test_parse_rejects_what_the_grammar_cannot_say(caption: str) -> None:
    assert parse_caption(caption) is None


def _corruptions(caption: str, scene: Scene) -> list[str]:
    """One-detail changes of a correct caption: colour, size, kind, relation, a dropped or an extra shape."""
    swaps = [("red", "green"), ("green", "red"), ("blue", "purple"), ("purple", "blue"), ("yellow", "red")]
    swaps += [("small", "large"), ("large", "small"), ("circle", "square"), ("square", "triangle")]
    swaps += [("triangle", "circle"), ("left", "right"), ("right", "left"), ("above", "below"), ("below", "above")]
    changed = [re.sub(rf"\b{old}\b", new, caption, count=1) for old, new in swaps if re.search(rf"\b{old}\b", caption)]
    if len(scene.objects) == 2:
        changed.append(f"a {scene.objects[0].phrase}")
    else:
        extra = BLUE_SQUARE if scene.objects[0] == RED_CIRCLE else RED_CIRCLE
        changed.append(f"a {scene.objects[0].phrase} to the left of a {extra.phrase}")
    return changed


def test_one_wrong_detail_makes_the_caption_wrong(dataset: Path) -> None:
    scenes = load_scenes(dataset / "annotations" / "scenes_val2017.json")
    for ann in _coco(dataset, "val")["annotations"]:
        scene = scenes[ann["image_id"]]
        assert scene_matches(ann["caption"], scene)
        for wrong in _corruptions(ann["caption"], scene):
            assert parse_caption(wrong) is not None, wrong  # still a sentence of the grammar, only untrue
            assert not scene_matches(wrong, scene), (ann["caption"], wrong)


def test_scene_accuracy_counts_exactly_right_captions(dataset: Path) -> None:
    scenes = load_scenes(dataset / "annotations" / "scenes_test2017.json")
    candidates = {ann["image_id"]: ann["caption"] for ann in _coco(dataset, "test")["annotations"]}
    assert scene_accuracy(candidates, scenes) == 1.0
    ids = sorted(candidates)[:10]
    candidates.update({i: _corruptions(candidates[i], scenes[i])[-1] for i in ids})
    assert scene_accuracy(candidates, scenes) == pytest.approx(1 - 10 / len(candidates))
    with pytest.raises(UserError, match="no scene"):
        scene_accuracy({10**9: "a small red circle"}, scenes)
    with pytest.raises(UserError):
        scene_accuracy({}, scenes)


def test_load_scenes_reports_bad_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_scenes(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"1": {"objects": [{"colour": "pink"}]}}')
    with pytest.raises(UserError, match="not a shapes scenes file"):
        load_scenes(tmp_path / "bad.json")


# --- what the pixels show ------------------------------------------------------------------------------------------


def _measure(pixels: np.ndarray, colour: str, box: list[float] | None) -> dict[str, float]:
    """Centroid, extent, area share and fill of the pixels of one palette colour (optionally inside one box)."""
    mask = np.linalg.norm(pixels - np.array(PALETTE[colour]), axis=-1) < 45
    if box is not None:
        x0, y0, x1, y1 = box
        inside = np.zeros_like(mask)
        inside[max(0, int(y0) - 1) : int(y1) + 2, max(0, int(x0) - 1) : int(x1) + 2] = True
        mask &= inside
    ys, xs = np.nonzero(mask)
    extent = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    return {"x": xs.mean(), "y": ys.mean(), "x0": xs.min(), "x1": xs.max(), "y0": ys.min(), "y1": ys.max(),
            "area": len(xs) / mask.size, "fill": len(xs) / extent}  # fmt: skip


def _kind(fill: float) -> str:
    return "square" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"


def test_pixels_show_the_scene(dataset: Path) -> None:
    raw = json.loads((dataset / "annotations" / "scenes_train2017.json").read_text())
    for image_id, scene in raw.items():
        objects = scene["objects"]
        pixels = np.asarray(Image.open(dataset / "train2017" / f"{int(image_id):012d}.jpg"), dtype=float)
        same_colour = len({o["colour"] for o in objects}) < len(objects)
        found = [_measure(pixels, o["colour"], o["box"] if same_colour else None) for o in objects]
        for obj, shape in zip(objects, found, strict=True):
            assert (shape["area"] > 0.045) == (obj["size"] == "large"), (image_id, obj, shape)
            assert _kind(shape["fill"]) == obj["kind"], (image_id, obj, shape)
        if scene["relation"] is None:
            continue
        first, second = found  # canonical: first is left of / above second
        on, across = ("x", "y") if scene["relation"] == "left of" else ("y", "x")
        assert second[on] - first[on] > 2 * abs(second[across] - first[across]), (image_id, scene)
        assert first[f"{on}1"] < second[f"{on}0"], f"image {image_id}: shapes overlap along the relation axis"
