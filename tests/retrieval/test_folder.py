"""The index folder: generations committed by the manifest, whole or not at all, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmtrain.errors import UserError
from mmtrain.retrieval.folder import Entry, read_folder, write_folder


def entries(tmp_path, names: list[str]) -> list[Entry]:
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    return [Entry.of(tmp_path / name) for name in names]


def vectors(count: int, dtype: str = "float32") -> np.ndarray:
    x = np.random.default_rng(count).standard_normal((count, 8))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def test_write_then_read_round_trips(tmp_path):
    index = tmp_path / "index"
    rows = entries(tmp_path, ["a.jpg", "b.jpg"])
    manifest = write_folder(index, {"checkpoint": {"sha256": "abc"}}, rows, vectors(2, "float16"))
    assert manifest["images"] == 2 and manifest["embed_dim"] == 8 and manifest["dtype"] == "float16"
    folder = read_folder(index)
    assert folder.files == [str((tmp_path / n).resolve()) for n in ("a.jpg", "b.jpg")]
    assert folder.embeddings.dtype == np.float16 and np.array_equal(folder.embeddings, vectors(2, "float16"))
    assert folder.manifest["checkpoint"] == {"sha256": "abc"}
    assert not list(index.glob(".*.tmp"))


def test_a_new_generation_replaces_the_old_files(tmp_path):
    index = tmp_path / "index"
    write_folder(index, {}, entries(tmp_path, ["a.jpg"]), vectors(1))
    write_folder(index, {}, entries(tmp_path, ["a.jpg", "b.jpg"]), vectors(2))
    assert sorted(p.name for p in index.iterdir()) == ["embeddings-0002.npy", "files-0002.jsonl", "manifest.json"]
    assert read_folder(index).manifest["generation"] == 2


def test_an_interrupted_update_leaves_the_committed_generation_readable(tmp_path):
    """Files of a generation whose manifest was never written are ignored, then cleared by the next update."""
    index = tmp_path / "index"
    write_folder(index, {}, entries(tmp_path, ["a.jpg"]), vectors(1))
    np.save(index / "embeddings-0002.npy", vectors(5))  # what a crash before the manifest leaves
    (index / "files-0002.jsonl").write_text("")
    folder = read_folder(index)
    assert len(folder.files) == 1 and folder.embeddings.shape == (1, 8)
    write_folder(index, {}, entries(tmp_path, ["a.jpg", "b.jpg"]), vectors(2))
    assert read_folder(index).manifest["generation"] == 3
    assert sorted(p.name for p in index.glob("*-*")) == ["embeddings-0003.npy", "files-0003.jsonl"]


def test_folders_that_are_not_whole_indexes_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder; build one with: mmtrain index"):
        read_folder(tmp_path / "missing")
    with pytest.raises(UserError, match=r"not an mmtrain index \(no manifest.json\)"):
        read_folder(tmp_path)
    index = tmp_path / "index"
    write_folder(index, {}, entries(tmp_path, ["a.jpg", "b.jpg"]), vectors(2))
    manifest = json.loads((index / "manifest.json").read_text())
    (index / "manifest.json").write_text(json.dumps({**manifest, "images": 3}))
    with pytest.raises(UserError, match=r"do not match its manifest \(3 images of width 8; embeddings \(2, 8\)"):
        read_folder(index)
    (index / "files-0001.jsonl").unlink()
    with pytest.raises(UserError, match="index data unreadable"):
        read_folder(index)
