"""Per-sample prompts from a table column (question -> answer data): source, store, training batches, fit and eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmtrain.data.sources.table import CaptionTable
from mmtrain.errors import UserError
from tests.conftest import run_in_process
from tests.data.test_sources import write_images

COLORS = ["red", "green", "blue", "white"]
SMALL = ["data.text.vocab_size=60", "data.resize.size=32", "num_workers=0"]


def qa_rows(count: int = 16) -> list[dict]:
    """Two questions an image, answered by its color and its place; images 0-9 train, 10-12 val, 13-15 test."""
    rows = []
    for i in range(count):
        split = "train" if i < 10 else "val" if i < 13 else "test"
        image = f"img/{i}.png"
        rows.append({"image": image, "question": "what color is it?", "answer": COLORS[i % 4], "split": split})
        rows.append({"image": image, "question": "Where is it?", "answer": ["on the left", "left"], "split": split})
    return rows


def write_qa(root: Path, rows: list[dict] | None = None) -> list[str]:
    """``root/captions.jsonl`` and its images; the preprocess overrides that read it with prompts."""
    rows = qa_rows() if rows is None else rows
    write_images(root / "images", list(dict.fromkeys(row["image"] for row in rows)))
    (root / "captions.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return ["data=jsonl", f"data.root={root}", "data.source.split_column=split", "data.source.caption_column=answer",
            "data.source.prompt_column=question", *SMALL]  # fmt: skip


def make_qa_store(base: Path) -> Path:
    """``base/store``, preprocessed from the question -> answer table of :func:`qa_rows` through the CLI."""
    result = run_in_process("preprocess", *write_qa(base / "raw"), f"out={base / 'store'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return base / "store"


@pytest.fixture(scope="module")
def qa_store(tmp_path_factory) -> Path:
    return make_qa_store(tmp_path_factory.mktemp("qa"))


def test_the_table_keeps_each_captions_prompt_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    rows = [
        {"image": "a.png", "q": "what is it?", "a": "a dog"},
        {"image": "b.png", "q": "how many?", "a": ["two", "2"]},
        {"image": "a.png", "q": "where?", "a": "on a sofa"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    source = CaptionTable(file=str(path), image_root=".", caption_column="a", prompt_column="q")
    samples, _ = source.read()
    assert [(s.file, s.captions, s.prompts) for s in samples] == [
        ("a.png", ["a dog", "on a sofa"], ["what is it?", "where?"]),
        ("b.png", ["two", "2"], ["how many?", "how many?"]),
    ]
    plain, _ = CaptionTable(file=str(path), image_root=".", caption_column="a").read()
    assert [s.prompts for s in plain] == [None, None]


@pytest.mark.parametrize(
    "name,content,message",
    [
        (
            "t.jsonl",
            '{"image": "a.jpg", "caption": "x", "question": "why?"}\n{"image": "b.jpg", "caption": "y"}\n',
            r"^\S*t\.jsonl:2: missing the prompt 'question' \(data\.source\.prompt_column=question\)$",
        ),
        ("t.csv", "image,caption\na.jpg,x\n", r"^\S*t\.csv: no column 'question' in the header"),
    ],
)
def test_a_missing_prompt_column_is_one_line_naming_the_file(tmp_path: Path, name, content, message) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        CaptionTable(file=str(tmp_path / name), image_root=".", prompt_column="question").read()


def test_the_bad_column_stops_preprocess_with_that_line(tmp_path: Path) -> None:
    overrides = write_qa(tmp_path / "raw") + ["data.source.prompt_column=query"]
    result = run_in_process("preprocess", *overrides, f"out={tmp_path / 'store'}")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("captions.jsonl:1: missing the prompt 'query' (data.source.prompt_column=query)")
    )


def test_preprocess_stores_prompts_beside_captions_and_pairs_as_references(qa_store: Path) -> None:
    from litdata import StreamingDataset

    manifest = json.loads((qa_store / "manifest.json").read_text())
    assert manifest["prompts"] is True
    assert manifest["splits"]["train"]["captions"]["kept"] == 10 * 3
    item = StreamingDataset(str(qa_store / "train"), shuffle=False)[0]
    assert json.loads(item["captions"]) == ["red", "on the left", "left"]
    assert json.loads(item["prompts"]) == ["what color is it?", "where is it?", "where is it?"]  # lowercased
    refs = json.loads((qa_store / "references_test.json").read_text())
    assert refs["images"][:2] == [
        {"id": "14:0", "image_id": 14, "file_name": "img/13.png", "prompt": "what color is it?"},
        {"id": "14:1", "image_id": 14, "file_name": "img/13.png", "prompt": "where is it?"},
    ]
    by_pair = {}
    for annotation in refs["annotations"]:
        by_pair.setdefault(annotation["image_id"], []).append(annotation["caption"])
    assert by_pair["14:0"] == ["green"] and by_pair["14:1"] == ["on the left", "left"]


def test_a_store_without_a_prompt_column_is_as_before(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from mmtrain.cli import CONFIG_DIR
    from mmtrain.commands.preprocess import source_fingerprint

    overrides = [o for o in write_qa(tmp_path / "raw") if "prompt_column" not in o]
    assert run_in_process("preprocess", *overrides, f"out={tmp_path / 'plain'}").returncode == 0
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert "prompts" not in manifest
    refs = json.loads((tmp_path / "plain" / "references_test.json").read_text())
    assert [image["id"] for image in refs["images"]] == [14, 15, 16]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("preprocess", overrides=[o for o in overrides if o.startswith("data.") or o == "data=jsonl"])
    # The config hash of a table store is what it was before prompt columns: the unset option is not part of it.
    assert "prompt_column" in cfg.data.source and "prompt_column" not in source_fingerprint(cfg)


def test_training_rows_get_their_own_prompt_after_bos_without_loss(qa_store: Path) -> None:
    from mmtrain.data.batch import CaptionDataset, collate
    from mmtrain.tokens import Tokenizer

    tokenizer = Tokenizer(qa_store / "tokenizer.model")
    dataset = CaptionDataset(qa_store / "train", tokenizer, captions=3, max_len=16)
    batch = collate([dataset.stream[i] for i in range(4)], dataset).choose_captions(3, seed=1)
    pairs = {("what color is it?", c) for c in COLORS} | {("where is it?", "on the left"), ("where is it?", "left")}
    seen = set()
    for ids, targets in zip(batch.input_ids.tolist(), batch.targets.tolist(), strict=True):
        first = targets.index(True)  # the first token the loss predicts
        assert ids[0] == tokenizer.bos_id and not any(targets[:first])
        prompt, answer = tokenizer.decode(ids[1:first]), tokenizer.decode(ids[first:])
        assert (prompt, answer) in pairs
        assert ids[1:first] == tokenizer.tokens(prompt)  # exactly the prompt's tokens carry no loss
        assert sum(targets) == len(tokenizer.tokens(answer)) + 1  # the answer and eos
        seen.add(prompt)
    assert seen == {"what color is it?", "where is it?"}


def test_a_fixed_prompt_with_a_store_of_prompts_is_one_line(qa_store: Path, tmp_path: Path) -> None:
    result = run_in_process("fit", f"data.store={qa_store}", f"out={tmp_path}", "prompt=a picture of")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "prompt='a picture of'" in line and "its own prompt" in line and "drop prompt=" in line


def test_scst_on_a_store_of_prompts_is_one_line(qa_store: Path, tmp_path: Path) -> None:
    result = run_in_process(
        "fit", f"data.store={qa_store}", f"out={tmp_path}", "objective=scst", "datamodule.batch_size=4"
    )
    assert result.returncode == 1
    assert "objective=scst does not use per-sample prompts yet" in result.stderr.strip().splitlines()[-1]


TINY_FIT = [
    "encoder=vit_grid_tiny", "encoder.model_kwargs.depth=1", "encoder.model_kwargs.embed_dim=32",
    "encoder.model_kwargs.num_heads=2", "decoder.d_model=32", "decoder.num_layers=1", "decoder.num_heads=2",
    "datamodule.batch_size=4", "datamodule.eval_batch_size=2", "trainer.max_steps=4", "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1", "optim.warmup_steps=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def qa_checkpoint(qa_store: Path, tmp_path_factory) -> Path:
    """4 steps of fit on the QA store, validating every 2 (each validation answers every val pair)."""
    out = tmp_path_factory.mktemp("qa_fit")
    fit = run_in_process("fit", f"data.store={qa_store}", f"out={out}", *TINY_FIT)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "val/CIDEr" in (out / "logs" / "metrics.csv").read_text().splitlines()[0]
    return out / "checkpoints" / "last.ckpt"


def test_eval_answers_every_image_and_prompt_pair_against_its_own_answers(qa_store, qa_checkpoint, tmp_path) -> None:
    result = run_in_process("eval", f"ckpt={qa_checkpoint}", "split=test", f"out={tmp_path}", "bootstrap=0")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "results_test.json").read_text())
    refs = json.loads((qa_store / "references_test.json").read_text())
    assert [(r["image_id"], r["prompt"]) for r in rows] == [(i["id"], i["prompt"]) for i in refs["images"]]
    assert all(isinstance(r["caption"], str) for r in rows)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_images"] == 6  # 3 test images x 2 questions, each scored against its own answers


def test_caption_takes_prompts_from_a_jsonl_list(qa_store, qa_checkpoint, tmp_path) -> None:
    images = qa_store.parent / "raw" / "images" / "img"
    lines = [
        {"image": str(images / "13.png"), "prompt": "what color is it?"},
        {"image": str(images / "13.png"), "prompt": "where is it?"},
        {"image": str(images / "14.png"), "prompt": "what color is it?"},
    ]
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    out = tmp_path / "out"
    result = run_in_process(
        "caption", f"ckpt={qa_checkpoint}", f"inputs=[{tmp_path / 'questions.jsonl'}]", f"out={out}", "num_workers=0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [(Path(r["file"]).name, r["prompt"]) for r in rows] == [(Path(x["image"]).name, x["prompt"]) for x in lines]
    keys = [r["image_id"].split(":") for r in rows]  # IMAGE_ID:n, n counting each image's prompts
    assert [n for _, n in keys] == ["0", "1", "0"] and keys[0][0] == keys[1][0] != keys[2][0]
    results = json.loads((out / "results.json").read_text())
    assert [r["prompt"] for r in results] == [line["prompt"] for line in lines]
