"""A newcomer's path through the CLI: their own CSV/JSONL (the examples of docs/your-data.md, run as written), the
mistakes they make (each one line naming what is wrong), and the records and output of a short fit on it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, TINY_MODEL
from tests.reliability.conftest import assert_one_line_error, run_in_process

DOC = ROOT / "docs" / "your-data.md"
SMALL = ["data.resize.size=32", "num_workers=0"]  # the docs' commands, at test size
FIT = [
    *[arg for arg in TINY_MODEL if not arg.startswith(("trainer.", "datamodule.batch_size"))],
    *["datamodule.batch_size=2", "trainer.max_steps=8", "trainer.val_check_interval=4", "trainer.log_every_n_steps=4"],
]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _commands() -> list[list[str]]:
    lines = [line for block in _blocks("bash") for line in block.splitlines() if line.startswith("mmtrain preprocess")]
    return [line.split()[1:] for line in lines]


def _write_example(base: Path) -> Path:
    """``base/my_photos``: the docs' tables as written, and a small photo for every path they name."""
    folder = base / "my_photos"
    csv_plain, csv_fixed = _blocks("csv")
    (folder / "images").mkdir(parents=True)
    (folder / "captions.csv").write_text(csv_plain)
    (folder / "fixed.csv").write_text(csv_fixed)
    (folder / "captions.jsonl").write_text(_blocks("json")[0])
    names = {line.split(",")[0] for line in (csv_plain + csv_fixed).splitlines()[1:] if line}
    names |= {json.loads(line)["image"] for line in _blocks("json")[0].splitlines() if line}
    rng = np.random.default_rng(0)
    for name in sorted(names - {"image", "photo"}):
        (folder / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / "images" / name)
    return folder


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """The docs' example folder, with each of its preprocess commands run in it (in process)."""
    base = tmp_path_factory.mktemp("your-data")
    _write_example(base)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base)
        for args in _commands():
            result = run_in_process(*args, *SMALL)
            assert result.returncode == 0, result.stderr[-2000:]
    return base


def _manifest(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())


def _ids(store: Path, split: str) -> set[int]:
    return {image["id"] for image in json.loads((store / f"references_{split}.json").read_text())["images"]}


def test_the_docs_csv_example_holds_out_seeded_image_disjoint_splits(example):
    store = example / "stores" / "my_photos"
    splits = _manifest(store)["splits"]
    assert [splits[s]["images"] for s in ("train", "val", "test")] == [3, 1, 1]
    assert splits["train"]["captions"]["kept"] == 6  # two captions an image, moved whole
    train, val, test = (_ids(store, s) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test) and len(train | val | test) == 5


def test_the_docs_split_and_id_columns_and_jsonl_examples(example):
    fixed = example / "stores" / "fixed"
    assert (_ids(fixed, "train"), _ids(fixed, "val"), _ids(fixed, "test")) == ({101, 102, 103}, {104}, {105})
    jsonl = _manifest(example / "stores" / "my_photos_jsonl")["splits"]
    assert [jsonl[s]["images"] for s in ("train", "val", "test")] == [3, 1, 1]
    assert jsonl["train"]["captions"]["kept"] == 5


def test_the_manifest_names_the_dataset_and_the_real_vocabulary(example):
    from mmtrain.tokens import Tokenizer

    store = example / "stores" / "my_photos"
    manifest = _manifest(store)
    assert manifest["dataset"]["name"] == "csv" and manifest["dataset"]["root"] == "my_photos/images"
    assert manifest["dataset"]["val_fraction"] == 0.2
    real = Tokenizer(store / "tokenizer.model").vocab_size
    assert manifest["tokenizer"]["vocab_size"] == real < manifest["tokenizer"]["vocab_size_asked"] == 8000


def test_no_split_column_warns_at_preprocess_and_fit_refuses_the_empty_val_split(example, tmp_path, cli):
    store = tmp_path / "store"
    result = run_in_process("preprocess", "data=csv", f"data.root={example / 'my_photos'}", f"out={store}", *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the val split is empty: fit validates on it; hold out images with data.val_fraction=0.1" in result.stdout
    assert "the test split is empty: mmtrain eval split=test will have nothing to score" in result.stdout
    code, stderr = cli("fit", f"data.store={store}", f"out={tmp_path / 'run'}", *TINY_MODEL)
    line = assert_one_line_error(code, stderr, "the val split is empty (0 images)", "data.val_fraction=0.1")
    assert (tmp_path / "run" / "error.log").read_text().strip() == line  # the failed run logs its error
    code, stderr = cli("fit", f"data.store={example / 'stores' / 'my_photos'}", f"out={tmp_path / 'run2'}")
    assert_one_line_error(code, stderr, "the train split has 3 images, fewer than one batch", "batch_size=3")


def test_a_wrong_image_root_names_how_many_where_and_writes_rejected_jsonl(example, tmp_path, cli):
    wrong = example / "my_photos" / "imgs"
    code, stderr = cli(
        "preprocess", "data=csv", f"data.root={example / 'my_photos'}", f"data.source.image_root={wrong}",
        f"out={tmp_path / 'store'}", *SMALL,
    )  # fmt: skip
    assert_one_line_error(code, stderr, f"5 of the 5 train images are missing under {wrong}", "(e.g. beach/dog.jpg")
    rejected = (tmp_path / "store" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 5 and json.loads(rejected[0])["reason"].startswith("missing")
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_eval_refuses_an_empty_split_and_a_store_of_another_image_size(example, tiny_checkpoint, tmp_path, cli):
    empty = tmp_path / "empty"
    assert run_in_process("preprocess", "data=csv", f"data.root={example / 'my_photos'}", f"out={empty}", *SMALL)
    code, stderr = cli("eval", f"ckpt={tiny_checkpoint}", f"store={empty}", "split=test", f"out={tmp_path / 'e1'}")
    assert_one_line_error(code, stderr, "the test split is empty (0 images)", "data.test_fraction=0.1")
    bigger = tmp_path / "bigger"
    args = [f"data.root={example / 'my_photos'}", "data.val_fraction=0.4", "data.resize.size=48"]
    assert run_in_process("preprocess", "data=csv", *args, f"out={bigger}", "num_workers=0").returncode == 0
    code, stderr = cli("eval", f"ckpt={tiny_checkpoint}", f"store={bigger}", "split=val", f"out={tmp_path / 'e2'}")
    assert_one_line_error(code, stderr, "was trained on 32 px images but", "holds 48 px images", str(bigger))


def test_a_short_fit_records_the_store_dataset_and_the_best_checkpoint(example, tmp_path, monkeypatch):
    import mmtrain.training.progress as progress

    monkeypatch.setattr(progress, "SLOW_STEP_S", {"cpu": 0.0})  # every step counts as slow: the notice must show
    monkeypatch.setattr(progress, "WARMUP_STEPS", 1)
    monkeypatch.setattr(progress, "TIMED_STEPS", 2)
    run = tmp_path / "run"
    result = run_in_process("fit", f"data.store={example / 'stores' / 'my_photos'}", f"out={run}", *FIT)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    config = (run / "config.yaml").read_text()
    assert "name: csv" in config and "name: shapes" not in config and "root: my_photos/images" in config
    dataset = json.loads((run / "run_manifest.json").read_text())["config"]["data"]
    assert dataset["checksums"]["train"] == _manifest(example / "stores" / "my_photos")["splits"]["train"]["checksum"]
    summary = json.loads((run / "fit_summary.json").read_text())
    assert summary["monitor"] == "val/CIDEr" and summary["best_step"] in (4, 8)
    assert summary["metrics"]["val/CIDEr"] == pytest.approx(summary["best_score"], rel=1e-6)
    assert re.search(r"step 4/8 · loss \d+\.\d{4} · \d+\.\d\d steps/s · \d+:\d\d left", output)  # not a terminal
    assert re.search(r"about \d+\.\d s a step on cpu at 32 px images; 8 steps take about", output)
    for noise in ("💡", "GPU available", "0.00it/s", "smaller than the logging interval", "LeafSpec"):
        assert noise not in output, noise
    exported = run_in_process("export", f"ckpt={run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'bundle'}")
    assert exported.returncode == 0, exported.stderr[-2000:]
    card = (tmp_path / "bundle" / "README.md").read_text()
    assert "- trained on: csv (images under `my_photos/images`)" in card and dataset["checksums"]["val"][:12] in card


def test_the_progress_bar_shows_steps_per_second_and_time_left():
    from types import SimpleNamespace

    from mmtrain.training.progress import StepClock, StepProgressBar

    clock = StepClock()
    bar = StepProgressBar(clock)
    trainer = SimpleNamespace(training=True, max_steps=3000, global_step=600)
    column = bar.configure_columns(trainer)[-1]
    bar._trainer = trainer
    task = SimpleNamespace(speed=None)
    assert column.render(task).plain == ""  # not "0.00it/s" before the rate is known
    clock.rate = 2.0
    assert column.render(task).plain == "2.00 steps/s · 20:00 left"  # 2400 steps at 2 a second


@pytest.mark.parametrize(
    "override,needle",
    [
        ("trainer.max_steps=ten", "trainer.max_steps=ten: expected an integer (default: 3000)"),
        ("data.stor=x", "no key data.stor in the fit config; did you mean data.store?"),
        ("compile=maybe", "compile=maybe: expected a boolean (true or false) (default: false)"),
    ],
)
def test_override_mistakes_are_one_line_with_the_remedy(tmp_path, override, needle):
    result = run_in_process("fit", override, f"out={tmp_path / 'run'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and needle in result.stderr
    assert "+data.stor" not in result.stderr


def test_pretrained_weights_offline_fail_within_seconds_naming_encoder_checkpoint(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what the probe finds without a network; no test touches one
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    started = time.perf_counter()
    code, stderr = cli("fit", "encoder=vit_grid_tiny", "encoder.pretrained=true", f"out={tmp_path / 'run'}")
    assert_one_line_error(code, stderr, "encoder.pretrained=true", "not in the local cache", "encoder.checkpoint=PATH")
    assert time.perf_counter() - started < 30


def test_the_gallery_says_when_photos_have_no_references(example, tiny_checkpoint, tmp_path):
    references = example / "stores" / "fixed" / "references_val.json"  # one photo of the five: city/bike.jpg
    args = [f"ckpt={tiny_checkpoint}", f"inputs=[{example / 'my_photos' / 'images'}]", f"references={references}"]
    result = run_in_process("caption", *args, f"html={tmp_path / 'g.html'}", f"out={tmp_path / 'c'}", "table=false")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning: 4 of 5 images have no references in" in result.stderr
    assert "the gallery shows references for 1" in result.stderr and (tmp_path / "g.html").is_file()
