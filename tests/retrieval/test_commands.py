"""mmtrain index and mmtrain search through the console entry point (in this process: cheaper once torch is loaded),
on a tiny model trained for a few steps with experiment=shapes_itc."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from tests.conftest import run_in_process as run_cli


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def index(ckpt: Path, inputs: list, out: Path, *extra: str):
    listed = ",".join(str(i) for i in inputs)
    workers = [] if any(e.startswith("workers=") for e in extra) else ["workers=0"]
    return run_cli("index", f"ckpt={ckpt}", f"inputs=[{listed}]", f"out={out}", *workers, *extra)


def error_line(result) -> str:
    """The one line a user mistake prints (exit 1, no traceback)."""
    lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_text_to_image_recall_through_index_and_search_equals_eval(
    itc_checkpoint, tiny_store, raw_test_images, tmp_path
):
    """Every test caption as a query, its image the target: R@5 from results.jsonl is eval's t2i_R@5."""
    references = json.loads((tiny_store / "references_test.json").read_text())
    files = {image["id"]: image["file_name"] for image in references["images"]}
    captions = [(a["caption"], files[a["image_id"]]) for a in references["annotations"]]
    (tmp_path / "queries.txt").write_text("".join(caption + "\n" for caption, _ in captions))
    built = index(itc_checkpoint, [raw_test_images], tmp_path / "index")
    assert built.returncode == 0, built.stderr[-3000:]
    assert json.loads(built.stdout.strip().splitlines()[-1])["images"] == 16
    searched = run_cli("search", f"index={tmp_path / 'index'}", f"queries={tmp_path / 'queries.txt'}", "k=5",
                       f"out={tmp_path / 'search'}", "table=false")  # fmt: skip
    assert searched.returncode == 0, searched.stderr[-3000:]
    rows = read_rows(tmp_path / "search" / "results.jsonl")
    assert len(rows) == 5 * len(captions) and [r["rank"] for r in rows[:5]] == [1, 2, 3, 4, 5]
    per_query = [rows[i : i + 5] for i in range(0, len(rows), 5)]
    assert all(top[0]["query"] == caption for top, (caption, _) in zip(per_query, captions, strict=True))
    assert all(top[i]["score"] >= top[i + 1]["score"] for top in per_query for i in range(4))
    hits = [any(Path(r["file"]).name == file for r in top) for top, (_, file) in zip(per_query, captions, strict=True)]
    evaluated = run_cli("eval", f"ckpt={itc_checkpoint}", "split=test", f"out={tmp_path / 'eval'}", "bootstrap=0",
                        "meteor=false")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    recall = json.loads((tmp_path / "eval" / "retrieval.json").read_text())
    assert sum(hits) / len(hits) == recall["t2i_R@5"]


def test_a_second_run_embeds_only_new_files_and_reports_unreadable_ones(itc_checkpoint, raw_test_images, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    images = sorted(raw_test_images.glob("*.jpg"))
    for image in images[:6]:
        shutil.copy(image, photos)
    out = tmp_path / "index"
    assert index(itc_checkpoint, [photos], out, "workers=2").returncode == 0  # decoded in loader processes
    first = np.load(out / "embeddings-0001.npy")
    for image in images[6:9]:
        shutil.copy(image, photos)
    (photos / "broken.jpg").write_bytes(b"not an image")
    second = index(itc_checkpoint, [photos], out)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert (summary["added"], summary["kept"], summary["skipped"], summary["images"]) == (3, 6, 1, 9)
    assert "skipped" in second.stderr and "broken.jpg: not_an_image" in second.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["generation"], manifest["images"], manifest["embed_dim"]) == (2, 9, 128)
    assert not (out / "embeddings-0001.npy").exists()
    grown = np.load(out / manifest["files"]["embeddings"])
    assert np.array_equal(grown[:6], first)  # kept rows, not embedded again
    listed = [json.loads(line)["file"] for line in (out / manifest["files"]["list"]).read_text().splitlines()]
    assert listed == [str((photos / p.name).resolve()) for p in images[:9]]
    stamp = (out / "manifest.json").stat().st_mtime_ns
    (photos / "broken.jpg").unlink()
    again = index(itc_checkpoint, [photos], out)
    assert json.loads(again.stdout.strip().splitlines()[-1])["written"] is False
    assert (out / "manifest.json").stat().st_mtime_ns == stamp


def test_search_by_image_api_and_backends_agree(itc_checkpoint, raw_test_images, tmp_path):
    from mmtrain.retrieval import Index

    out = tmp_path / "index"
    assert index(itc_checkpoint, [raw_test_images], out, "dtype=float16").returncode == 0
    query = sorted(raw_test_images.glob("*.jpg"))[3]
    page = tmp_path / "pages" / "search.html"
    searched = run_cli("search", f"index={out}", f"query_image={query}", "k=4", f"out={tmp_path / 's'}", f"html={page}")
    assert searched.returncode == 0, searched.stderr[-3000:]
    markup = page.read_text(encoding="utf-8")
    assert markup.count("<figure>") == 4 and markup.count("data:image/jpeg;base64,") == 5  # results and the query
    rows = read_rows(tmp_path / "s" / "results.jsonl")
    assert rows[0]["file"] == str(query.resolve()) and abs(rows[0]["score"] - 1.0) < 2e-3  # float16 rows
    assert query.name in searched.stdout  # the table
    exact = Index.open(out, backend="exact")
    assert len(exact) == 16 and exact.manifest["dtype"] == "float16"
    every = {hit.file: hit.score for hit in exact.search(["a small red circle"], k=16)[0]}
    top = Index.open(out, backend="faiss").search(["a small red circle"], k=5)[0]
    assert [hit.rank for hit in top] == [1, 2, 3, 4, 5]
    assert all(abs(every[hit.file] - hit.score) < 1e-5 for hit in top)
    assert np.allclose([h.score for h in top], sorted(every.values(), reverse=True)[:5], atol=1e-5)


def test_mistakes_are_one_line_errors(itc_checkpoint, tiny_checkpoint, raw_test_images, tmp_path):
    no_head = index(tiny_checkpoint, [raw_test_images], tmp_path / "x")
    assert "has no contrastive head" in error_line(no_head) and "objective=xe_itc" in error_line(no_head)
    photos = tmp_path / "photos"
    photos.mkdir()
    for image in sorted(raw_test_images.glob("*.jpg"))[:3]:
        shutil.copy(image, photos)
    out = tmp_path / "index"
    assert index(itc_checkpoint, [photos], out).returncode == 0
    checkpoint = torch.load(itc_checkpoint, map_location="cpu", weights_only=True)
    name = next(k for k in checkpoint["state_dict"] if k.endswith("logit_scale"))
    checkpoint["state_dict"][name] += 1.0
    other = tmp_path / "other.ckpt"
    torch.save(checkpoint, other)
    line = error_line(run_cli("search", f"index={out}", "query=a circle", "k=2", f"ckpt={other}", f"out={tmp_path}"))
    assert str(itc_checkpoint) in line and str(other) in line
    line = error_line(run_cli("search", f"index={out}", "query=a circle", "k=4", f"out={tmp_path / 's'}"))
    assert "k=4 is larger than the index (3 images); use k<=3" in line
    moved = tmp_path / "moved.ckpt"
    shutil.copy(itc_checkpoint, moved)
    assert index(moved, [photos], tmp_path / "index2").returncode == 0
    moved.unlink()
    line = error_line(run_cli("search", f"index={tmp_path / 'index2'}", "query=a circle", "k=1", f"out={tmp_path}"))
    assert f"the checkpoint that built this index ({moved}) is not there; pass ckpt=PATH" in line
    line = error_line(run_cli("search", f"index={out}", "query=a circle", "k=1", f"ckpt={moved}", f"out={tmp_path}"))
    assert f"ckpt={moved}: no such checkpoint file" in line
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG")
    line = error_line(run_cli("search", f"index={out}", f"query_image={broken}", "k=2", f"out={tmp_path / 's'}"))
    assert str(broken) in line and "not_an_image" in line
    for image in photos.iterdir():
        image.unlink()
    emptied = index(itc_checkpoint, [photos], out)
    assert json.loads(emptied.stdout.strip().splitlines()[-1])["removed"] == 3
    line = error_line(run_cli("search", f"index={out}", "query=a circle", "k=1", f"out={tmp_path / 's'}"))
    assert "the index is empty (0 images)" in line


def test_a_growing_approximate_index_adds_to_its_lists_until_it_doubles(itc_checkpoint, raw_test_images, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    """The IVF index (here from 4 images, 2 lists) is grown in place, and trained again once the index has doubled."""
    import faiss

    from mmtrain.retrieval import backends

    monkeypatch.setattr(backends, "APPROX_MIN_IMAGES", 4)
    monkeypatch.setattr(backends, "default_nlist", lambda count: 2)
    photos, out = tmp_path / "photos", tmp_path / "index"
    photos.mkdir()
    images = sorted(raw_test_images.glob("*.jpg"))
    trained = []
    for count in (6, 9, 13):
        for image in images[len(list(photos.iterdir())) : count]:
            shutil.copy(image, photos)
        assert index(itc_checkpoint, [photos], out).returncode == 0
        manifest = json.loads((out / "manifest.json").read_text())
        ivf = faiss.read_index(str(out / manifest["files"]["faiss"]))
        assert ivf.ntotal == count and manifest["faiss"]["index"] == "IVF2,Flat"
        trained.append(manifest["faiss"]["trained_at"])
    assert trained == [6, 6, 13]
    from mmtrain.retrieval import Index

    exact = {hit.file: hit.score for hit in Index.open(out, backend="exact").search(["a blue square"], k=13)[0]}
    approximate = Index.open(out, backend="auto", nprobe=2).search(["a blue square"], k=13)[0]
    assert {hit.file for hit in approximate} == set(exact)  # every list visited: every image, with its exact score
    assert all(abs(exact[hit.file] - hit.score) < 1e-5 for hit in approximate)
