"""Dataset readers (Karpathy, Flickr8k, WebDataset, CSV/JSONL) and the split-overlap check, on files made here."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

from mmtrain.cli import CONFIG_DIR
from mmtrain.data.sources.base import Sample
from mmtrain.data.sources.flickr8k import Flickr8k
from mmtrain.data.sources.karpathy import KarpathySplits
from mmtrain.data.sources.table import CaptionTable
from mmtrain.data.sources.webdataset import WebDataset, expand_braces
from mmtrain.data.validate import split_overlap
from mmtrain.errors import UserError
from tests.conftest import run_in_process, shared_data

NEW_CONFIGS = ["karpathy_coco", "karpathy_flickr8k", "karpathy_flickr30k", "flickr8k", "webdataset", "csv", "jsonl"]


def image_bytes(shade: int, fmt: str = "PNG") -> bytes:
    """A 12x12 picture whose bytes differ for each ``shade``."""
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), (shade, 255 - shade, (shade * 7) % 256)).save(buffer, format=fmt)
    return buffer.getvalue()


def write_images(root: Path, names: list[str]) -> None:
    for shade, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(image_bytes(10 * shade + 5, "JPEG" if name.endswith(".jpg") else "PNG"))


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def by_file(samples: list[Sample]) -> dict[str, Sample]:
    return {sample.file: sample for sample in samples}


# --- Karpathy -------------------------------------------------------------------------------------------------------

COCO_SPLITS = {101: "train", 102: "restval", 103: "val", 104: "test", 105: "restval"}


def karpathy_coco(root: Path) -> Path:
    images = [
        {
            "filepath": "val2014" if split != "train" else "train2014",
            "filename": f"COCO_{image_id}.jpg",
            "cocoid": image_id,
            "imgid": index,
            "split": split,
            "sentences": [{"raw": f"Photo {image_id} number {k}.", "tokens": []} for k in range(2)],
        }
        for index, (image_id, split) in enumerate(COCO_SPLITS.items())
    ]
    path = root / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


@pytest.mark.parametrize(
    "restval_to,splits",
    [("train", ["train", "train", "val", "test", "train"]), ("val", ["train", "val", "val", "test", "val"])],
)
def test_karpathy_coco_paths_ids_captions_and_restval(tmp_path: Path, restval_to: str, splits: list[str]) -> None:
    source = KarpathySplits(file=str(karpathy_coco(tmp_path)), image_root=str(tmp_path), restval_to=restval_to)
    samples, report = source.read()
    assert [s.image_id for s in samples] == list(COCO_SPLITS) and [s.split for s in samples] == splits
    assert samples[0].file == "train2014/COCO_101.jpg" and samples[2].file == "val2014/COCO_103.jpg"
    assert samples[0].image_root == tmp_path and samples[0].archive is None
    assert samples[3].captions == ["Photo 104 number 0.", "Photo 104 number 1."]
    assert report.warnings == [] and report.images_without_captions == 0


def test_karpathy_restval_can_be_dropped(tmp_path: Path) -> None:
    samples, _ = KarpathySplits(file=str(karpathy_coco(tmp_path)), image_root=".", restval_to="drop").read()
    assert {s.image_id: s.split for s in samples} == {101: "train", 103: "val", 104: "test"}


def test_karpathy_counts_other_than_expected_are_warned(tmp_path: Path) -> None:
    expected = {"train": 113287, "val": 1, "test": 5000}
    _, report = KarpathySplits(file=str(karpathy_coco(tmp_path)), image_root=".", expected_counts=expected).read()
    assert report.warnings == [
        "train: 3 images, expected 113287 for the Karpathy COCO split",
        "test: 1 images, expected 5000 for the Karpathy COCO split",
    ]


def test_karpathy_flickr_uses_imgid_and_bare_filenames(tmp_path: Path) -> None:
    images = [
        {"filename": "1000268201_693b08cb0e.jpg", "imgid": 0, "split": "test", "sentences": [{"raw": "A child."}]},
        {"filename": "1001773457_577c3a7d70.jpg", "imgid": 1, "split": "train", "sentences": []},
    ]
    (tmp_path / "dataset_flickr8k.json").write_text(json.dumps({"images": images}))
    source = KarpathySplits(file=str(tmp_path / "dataset_flickr8k.json"), image_root=str(tmp_path / "imgs"))
    samples, report = source.read()
    assert [(s.image_id, s.file, s.split, s.captions) for s in samples] == [
        (0, "1000268201_693b08cb0e.jpg", "test", ["A child."]),
        (1, "1001773457_577c3a7d70.jpg", "train", []),
    ]
    assert report.images_without_captions == 1


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"images": [', "invalid JSON at line 1"),
        ('{"annotations": []}', "not a Karpathy split file"),
        ('{"images": [{"filename": "a.jpg", "imgid": 1, "split": "dev", "sentences": []}]}', "split 'dev'"),
        ('{"images": [{"filename": "a.jpg", "split": "val", "sentences": []}]}', "integer 'cocoid' or 'imgid'"),
    ],
)
def test_karpathy_broken_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "dataset_coco.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as err:
        KarpathySplits(file=str(path), image_root=".").read()
    assert str(err.value).startswith(str(path))


# --- Flickr8k -------------------------------------------------------------------------------------------------------


def flickr8k(root: Path, token_lines: list[str] | None = None) -> Flickr8k:
    text = root / "Flickr8k_text"
    text.mkdir(parents=True, exist_ok=True)
    tokens = token_lines or [
        "c.jpg#0\tA cat sleeps .",
        "a.jpg#0\tA dog runs .",
        "a.jpg#1\tA brown dog runs fast .",
        "2258277193_586949ec62.jpg.1#0\tA caption of an image that is in no list .",
        "b.jpg#0\tTwo birds .",
        "e.jpg#0\tA horse .",
    ]
    (text / "Flickr8k.token.txt").write_text("\n".join(tokens) + "\n")
    lists = {"trainImages": ["c.jpg", "a.jpg"], "devImages": ["b.jpg"], "testImages": ["d.jpg", "e.jpg"]}
    for name, files in lists.items():
        (text / f"Flickr_8k.{name}.txt").write_text("\n".join(files) + "\n")
    splits = {"train": "trainImages", "val": "devImages", "test": "testImages"}
    return Flickr8k(
        captions=str(text / "Flickr8k.token.txt"),
        image_root=str(root / "Flicker8k_Dataset"),
        splits={split: str(text / f"Flickr_8k.{name}.txt") for split, name in splits.items()},
    )


def test_flickr8k_reads_split_lists_and_numbers_images_by_name(tmp_path: Path) -> None:
    samples, report = flickr8k(tmp_path).read()
    got = [(s.image_id, s.file, s.split, s.captions) for s in samples]
    assert got == [
        (3, "c.jpg", "train", ["A cat sleeps ."]),
        (1, "a.jpg", "train", ["A dog runs .", "A brown dog runs fast ."]),
        (2, "b.jpg", "val", ["Two birds ."]),
        (4, "d.jpg", "test", []),
        (5, "e.jpg", "test", ["A horse ."]),
    ]
    assert samples[0].image_root == tmp_path / "Flicker8k_Dataset"
    assert report.captions_for_unknown_images == 1 and report.images_without_captions == 1


def test_flickr8k_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"Flickr8k\.token\.txt:2: expected 'NAME\.jpg#N<TAB>caption'"):
        flickr8k(tmp_path, ["a.jpg#0\tfine", "a.jpg 1 no tab here"]).read()


def test_flickr8k_image_in_two_lists_is_an_error(tmp_path: Path) -> None:
    source = flickr8k(tmp_path)
    Path(source.splits["test"]).write_text("d.jpg\na.jpg\n")
    with pytest.raises(UserError, match=r"testImages\.txt: a\.jpg is also listed in .*trainImages\.txt"):
        source.read()


# --- WebDataset -----------------------------------------------------------------------------------------------------


def test_brace_patterns_expand_in_order_with_padding() -> None:
    assert expand_braces("s-{00000..00002}.tar") == ["s-00000.tar", "s-00001.tar", "s-00002.tar"]
    assert expand_braces("{a,b}-{8..10}") == ["a-8", "a-9", "a-10", "b-8", "b-9", "b-10"]
    assert expand_braces("plain.tar") == ["plain.tar"] and expand_braces("x{y}.tar") == ["x{y}.tar"]


def img2dataset_shard(path: Path, first: int) -> Path:
    """Four keys: png+txt, jpg+json, webp with an empty json caption, and a caption without an image."""
    return write_tar(
        path,
        {
            f"{first:09d}.png": image_bytes(first % 200),
            f"{first:09d}.txt": b"A red square.\n",
            f"{first + 1:09d}.jpg": image_bytes(first % 200 + 1, "JPEG"),
            f"{first + 1:09d}.json": json.dumps({"caption": "A green circle.", "url": "http://x"}).encode(),
            f"{first + 2:09d}.webp": image_bytes(first % 200 + 2, "WEBP"),
            f"{first + 2:09d}.json": b'{"caption": null}',
            f"{first + 3:09d}.txt": b"An orphan caption.",
        },
    )


def test_webdataset_reads_txt_and_json_captions_with_numeric_ids(tmp_path: Path) -> None:
    shard = img2dataset_shard(tmp_path / "00000.tar", 0)
    samples, report = WebDataset(shards=str(shard), split="val").read()
    got = [(s.image_id, s.file, s.captions, s.split, s.archive) for s in samples]
    assert got == [
        (0, "000000000.png", ["A red square."], "val", str(shard)),
        (1, "000000001.jpg", ["A green circle."], "val", str(shard)),
        (2, "000000002.webp", [], "val", str(shard)),
    ]
    assert report.images_without_captions == 1 and report.captions_for_unknown_images == 1


def test_webdataset_split_mapping_braces_globs_and_running_ids(tmp_path: Path) -> None:
    for index in range(3):
        img2dataset_shard(tmp_path / f"train-{index:02d}.tar", 10 * index)
    write_tar(tmp_path / "val" / "only.tar", {"cat.jpg": image_bytes(99, "JPEG"), "cat.txt": b"A cat."})
    shards = {
        "train": [str(tmp_path / "train-{00..01}.tar"), str(tmp_path / "train-02.tar")],
        "val": [str(tmp_path / "val/*.tar")],
    }
    samples, _ = WebDataset(shards=shards).read()
    shard_order = [f"train-{index:02d}.tar" for index in range(3) for _ in range(3)] + ["only.tar"]
    assert [Path(s.archive).name for s in samples] == shard_order
    assert [s.split for s in samples] == ["train"] * 9 + ["val"]
    assert [s.image_id for s in samples] == list(range(1, 11)), "a non-numeric key numbers every image in order"


@pytest.mark.parametrize("with_fsspec", [True, False])
def test_webdataset_urls_are_downloaded_once_into_the_cache(tmp_path: Path, monkeypatch, with_fsspec: bool) -> None:
    if not with_fsspec:
        monkeypatch.setitem(sys.modules, "fsspec", None)  # import fails: the urllib fallback is used
    remote = img2dataset_shard(tmp_path / "remote" / "shard-00000.tar", 0)
    cache = tmp_path / "cache"
    source = WebDataset(shards=[remote.as_uri().replace("00000", "{00000..00000}")], cache_dir=str(cache))
    samples, _ = source.read()
    assert len(samples) == 3 and Path(samples[0].archive).parent == cache
    assert Path(samples[0].archive).read_bytes() == remote.read_bytes()
    remote.unlink()
    assert [s.file for s in source.read()[0]] == [s.file for s in samples], "a cached copy is not fetched again"


def test_webdataset_errors_name_the_shard(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing.tar: shard not found"):
        WebDataset(shards=str(tmp_path / "missing.tar")).read()
    with pytest.raises(UserError, match=r"nothing-\*\.tar: no shard matches"):
        WebDataset(shards=str(tmp_path / "nothing-*.tar")).read()
    (tmp_path / "junk.tar").write_bytes(b"not a tar file at all" * 40)
    with pytest.raises(UserError, match="junk.tar: not a readable tar shard"):
        WebDataset(shards=str(tmp_path / "junk.tar")).read()
    bad = write_tar(tmp_path / "bad.tar", {"k.jpg": image_bytes(1, "JPEG"), "k.json": b"{caption:"})
    with pytest.raises(UserError, match=r"bad.tar:k.json: invalid JSON"):
        WebDataset(shards=str(bad)).read()
    with pytest.raises(UserError, match="nowhere.invalid/s.tar: download failed"):
        WebDataset(shards="file:///nowhere.invalid/s.tar", cache_dir=str(tmp_path / "c")).read()


# --- CSV and JSONL --------------------------------------------------------------------------------------------------

CSV = """image,caption,split
dogs/1.jpg,"A dog, running.",train
cats/2.jpg,A cat.,val
dogs/1.jpg,Another dog.,train
birds/3.jpg,A bird.,test
"""


def test_csv_groups_rows_per_image_in_first_seen_order(tmp_path: Path) -> None:
    (tmp_path / "captions.csv").write_text(CSV)
    source = CaptionTable(
        file=str(tmp_path / "captions.csv"), image_root=str(tmp_path / "images"), split_column="split"
    )
    samples, _ = source.read()
    got = [(s.image_id, s.file, s.split, s.captions) for s in samples]
    assert got == [
        (1, "dogs/1.jpg", "train", ["A dog, running.", "Another dog."]),
        (2, "cats/2.jpg", "val", ["A cat."]),
        (3, "birds/3.jpg", "test", ["A bird."]),
    ]
    assert samples[0].image_root == tmp_path / "images"


def test_jsonl_groups_caption_lists_under_configured_columns(tmp_path: Path) -> None:
    rows = [
        {"path": "a.png", "text": ["one", "two"], "id": 7},
        {"path": "b.png", "text": "three", "id": "8"},
        {"path": "a.png", "text": "four", "id": 7},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    source = CaptionTable(file=str(path), image_root=".", image_column="path", caption_column="text", id_column="id")
    samples, _ = source.read()
    assert [(s.image_id, s.file, s.split, s.captions) for s in samples] == [
        (7, "a.png", "train", ["one", "two", "four"]),
        (8, "b.png", "train", ["three"]),
    ]


@pytest.mark.parametrize(
    "name,content,kwargs,message",
    [
        ("t.csv", "image,caption\na.jpg,ok\nb.jpg\n", {}, r"t\.csv:3: missing 'caption'"),
        ("t.csv", "file,caption\na.jpg,ok\n", {}, r"t\.csv: no column 'image'"),
        (
            "t.csv",
            "image,caption,split\na.jpg,x,train\na.jpg,y,val\n",
            {"split_column": "split"},
            r"t\.csv:3: .*'val' here but 'train' on line 2",
        ),
        ("t.csv", "image,caption,split\na.jpg,x,dev\n", {"split_column": "split"}, r"t\.csv:2: split 'dev'"),
        (
            "t.jsonl",
            '{"image": "a.jpg", "caption": "x"}\n{"image": "b.jpg", "caption": \n',
            {},
            r"t\.jsonl:2: invalid JSON",
        ),
        ("t.jsonl", '{"image": "a.jpg"}\n', {}, r"t\.jsonl:1: missing 'caption'"),
        (
            "t.jsonl",
            '{"image": "a.jpg", "caption": "x", "id": 1}\n{"image": "b.jpg", "caption": "y", "id": 1}\n',
            {"id_column": "id"},
            r"t\.jsonl:2: image id 1 already names 'a\.jpg'",
        ),
    ],
)
def test_table_bad_rows_name_file_and_line(tmp_path: Path, name: str, content: str, kwargs: dict, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        CaptionTable(file=str(tmp_path / name), image_root=".", **kwargs).read()


# --- split overlap --------------------------------------------------------------------------------------------------


def test_split_overlap_finds_shared_ids_files_and_copies(tmp_path: Path) -> None:
    write_images(tmp_path, ["a.png", "b.png", "c.png", "d.png"])
    (tmp_path / "copy_of_c.png").write_bytes((tmp_path / "c.png").read_bytes())

    def sample(image_id: int, file: str, split: str) -> Sample:
        return Sample(image_id, file, tmp_path, ["x"], split)

    clean = [sample(1, "a.png", "train"), sample(2, "b.png", "val"), sample(3, "missing.png", "test")]
    assert split_overlap(clean) == []
    assert split_overlap(clean + [sample(1, "d.png", "test")]) == [
        f"image id 1 in test and train: {tmp_path / 'a.png'} (train), {tmp_path / 'd.png'} (test)"
    ]
    assert split_overlap(clean + [sample(9, "./b.png", "train")]) == [
        f"the same file in train and val: {tmp_path / 'b.png'} (val), {tmp_path / './b.png'} (train)"
    ]
    copies = clean + [sample(4, "c.png", "train"), sample(5, "copy_of_c.png", "val")]
    assert split_overlap(copies) == [
        f"identical image bytes in train and val: {tmp_path / 'c.png'} (train), {tmp_path / 'copy_of_c.png'} (val)"
    ]
    assert split_overlap(copies, by_content=False) == []
    same_split = clean + [sample(4, "c.png", "train"), sample(5, "copy_of_c.png", "train")]
    assert split_overlap(same_split) == [], "copies inside one split are not a leak"


def test_split_overlap_reads_archive_members(tmp_path: Path) -> None:
    write_tar(tmp_path / "a.tar", {"1.jpg": image_bytes(3, "JPEG"), "2.jpg": image_bytes(4, "JPEG")})
    write_tar(tmp_path / "b.tar", {"9.jpg": image_bytes(3, "JPEG")})
    samples = [
        Sample(1, "1.jpg", tmp_path / "a.tar", ["x"], "train", archive=str(tmp_path / "a.tar")),
        Sample(2, "2.jpg", tmp_path / "a.tar", ["x"], "train", archive=str(tmp_path / "a.tar")),
        Sample(9, "9.jpg", tmp_path / "b.tar", ["x"], "test", archive=str(tmp_path / "b.tar")),
    ]
    assert split_overlap(samples) == [
        f"identical image bytes in test and train: {tmp_path}/a.tar:1.jpg (train), {tmp_path}/b.tar:9.jpg (test)"
    ]


# --- configs, the CLI and real data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_data_configs_instantiate_their_source(tmp_path: Path, name: str) -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("preprocess", overrides=[f"data={name}", f"data.root={tmp_path}"])
    source = instantiate(cfg.data.source)
    assert cfg.data.name == name and callable(source.read)
    assert str(tmp_path) in repr(vars(source)), "the source reads files under data.root"


def cli_karpathy(root: Path) -> tuple[list[str], dict[str, int]]:
    karpathy_coco(root)
    write_images(root, [f"{'train' if s == 'train' else 'val'}2014/COCO_{i}.jpg" for i, s in COCO_SPLITS.items()])
    return ["data=karpathy_coco"], {"train": 3, "val": 1, "test": 1}


def cli_flickr8k(root: Path) -> tuple[list[str], dict[str, int]]:
    flickr8k(root)
    write_images(root / "Flicker8k_Dataset", ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])
    return ["data=flickr8k"], {"train": 2, "val": 1, "test": 1}  # d.jpg has no captions: rejected


def cli_webdataset(root: Path) -> tuple[list[str], dict[str, int]]:
    for index in range(2):
        img2dataset_shard(root / f"train-{index:02d}.tar", 10 * index)
    write_tar(root / "val" / "v.tar", {"cat.jpg": image_bytes(99, "JPEG"), "cat.txt": b"A cat."})
    write_tar(root / "test.tar", {"owl.jpg": image_bytes(98, "JPEG"), "owl.json": b'{"caption": "An owl."}'})
    patterns = f'train:["{root}/train-{{00..01}}.tar"],val:"{root}/val/*.tar",test:"{root}/test.tar"'
    return ["data=webdataset", f"data.source.shards={{{patterns}}}"], {"train": 4, "val": 1, "test": 1}


def cli_table(root: Path, name: str) -> tuple[list[str], dict[str, int]]:
    write_images(root / "images", ["dogs/1.jpg", "cats/2.jpg", "birds/3.jpg"])
    if name == "csv":
        (root / "captions.csv").write_text(CSV)
    else:
        lines = CSV.splitlines()[1:]
        rows = [{"image": r.split(",")[0], "caption": "a photo", "split": r.split(",")[-1]} for r in lines]
        (root / "captions.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    return [f"data={name}", "data.source.split_column=split"], {"train": 1, "val": 1, "test": 1}


CLI_CASES = {
    "karpathy": cli_karpathy,
    "flickr8k": cli_flickr8k,
    "webdataset": cli_webdataset,
    "csv": lambda root: cli_table(root, "csv"),
    "jsonl": lambda root: cli_table(root, "jsonl"),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_preprocess_cli_reads_each_format(tmp_path: Path, case: str) -> None:
    root, out = tmp_path / "raw", tmp_path / "store"
    root.mkdir()
    overrides, counts = CLI_CASES[case](root)
    small = ["data.text.vocab_size=40", "data.resize.size=32", "num_workers=1"]
    result = run_in_process("preprocess", *overrides, f"data.root={root}", f"out={out}", *small)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {split: info["images"] for split, info in manifest["splits"].items()} == counts
    if case == "karpathy":
        assert "train: 3 images, expected 113287 for the Karpathy COCO split" in manifest["source"]["warnings"]


@pytest.mark.realdata
def test_karpathy_file_over_real_coco_images(tmp_path: Path) -> None:
    coco = shared_data("coco_tiny100")
    images = []
    for folder in ("train2017", "val2017"):
        data = json.loads((coco / "annotations" / f"captions_{folder}.json").read_text())
        sentences: dict[int, list] = {}
        for ann in data["annotations"]:
            sentences.setdefault(ann["image_id"], []).append({"raw": ann["caption"]})
        for image in data["images"]:
            split = ("test", "val", "train", "restval")[len(images) % 4]
            entry = {"filepath": folder, "filename": image["file_name"], "cocoid": image["id"], "split": split}
            images.append({**entry, "sentences": sentences[image["id"]]})
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": images}))
    expected = {"train": 50, "val": 25, "test": 5000}
    source = KarpathySplits(file=str(tmp_path / "dataset_coco.json"), image_root=str(coco), expected_counts=expected)
    samples, report = source.read()
    assert len(samples) == 100 and all((coco / s.file).is_file() and len(s.captions) == 5 for s in samples)
    assert report.warnings == ["test: 25 images, expected 5000 for the Karpathy COCO split"]
    assert split_overlap(samples) == []
