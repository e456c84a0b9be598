"""Stores on object storage: ``data.store=s3://...`` is mirrored and streamed through LitData, never read as a path.

The transport is a local folder behind LitData's ``s3://`` downloader (see ``folder_bucket``); no test touches the
network or needs credentials.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from litdata.streaming import downloader as litdata_downloader

from mmtrain.data.datamodule import CaptionDataModule
from mmtrain.data.remote import is_url, mirror_store
from mmtrain.errors import UserError
from tests.conftest import ROOT, TINY_MODEL
from tests.data.folder_bucket import PREFIX, folder_bucket

URL = "s3://bucket/store"


@pytest.fixture
def bucket(tiny_store, monkeypatch):
    """``s3://bucket/KEY`` served from the tiny store's parent folder (so ``URL`` is the tiny store)."""
    cls = folder_bucket(tiny_store.parent)
    monkeypatch.setitem(litdata_downloader._DOWNLOADERS, PREFIX, cls)
    return cls


def _first(loader):
    return next(iter(loader))


def test_a_store_url_trains_on_the_same_batches_as_the_local_store(tiny_store, bucket, tmp_path):
    remote = CaptionDataModule(store=URL + "/", batch_size=16, eval_batch_size=16, cache_dir=str(tmp_path / "cache"))
    local = CaptionDataModule(store=str(tiny_store), batch_size=16, eval_batch_size=16)
    assert remote.location == URL and local.location == str(tiny_store.resolve())
    assert remote.store.parent == tmp_path / "cache" and remote.manifest == local.manifest
    assert remote.tokenizer.model_bytes == local.tokenizer.model_bytes
    assert remote.references("val") == local.references("val")
    for make in (lambda dm: dm.train_dataloader(), lambda dm: dm.val_dataloader()):
        got, want = _first(make(remote)), _first(make(local))
        assert torch.equal(got.images, want.images) and torch.equal(got.image_ids, want.image_ids)
    fetched = {url.removeprefix(URL + "/") for url in bucket.requested}
    assert {"manifest.json", "tokenizer.model", "references_val.json", "train/index.json"} <= fetched
    assert any(name.startswith("train/chunk-") for name in fetched)  # chunks streamed from the URL too
    assert sorted(p.name for p in (remote.store / "train").glob("chunk-*.bin"))  # ... into the cache folder


def test_a_mirror_is_reused_until_the_store_is_uploaded_again(tiny_store, monkeypatch, tmp_path):
    upload = tmp_path / "bucket"
    shutil.copytree(tiny_store, upload / "store", ignore=shutil.ignore_patterns("*.bin"))
    cls = folder_bucket(upload)
    monkeypatch.setitem(litdata_downloader._DOWNLOADERS, PREFIX, cls)
    first = mirror_store(URL, tmp_path / "cache")
    assert mirror_store(URL, tmp_path / "cache") == first
    assert cls.requested.count(f"{URL}/tokenizer.model") == 1  # the second call fetched the manifest only
    manifest = json.loads((upload / "store" / "manifest.json").read_text())
    manifest["config_hash"] = "0" * 16  # preprocessed again and re-uploaded
    (upload / "store" / "manifest.json").write_text(json.dumps(manifest))
    second = mirror_store(URL, tmp_path / "cache")
    assert second != first and json.loads((second / "manifest.json").read_text()) == manifest


def test_an_unreachable_store_url_is_one_line_naming_it(bucket, tmp_path):
    with pytest.raises(UserError) as caught:
        CaptionDataModule(store="s3://bucket/no-such-store", cache_dir=str(tmp_path))
    message = str(caught.value)
    assert message.startswith("s3://bucket/no-such-store/manifest.json: cannot fetch") and "\n" not in message
    assert "credentials" in message
    assert not list(tmp_path.rglob("*.json"))  # nothing half-written into the cache


def test_only_object_store_urls_leave_the_filesystem_route(tmp_path):
    assert is_url("s3://b/k") and is_url("gs://b/k") and not is_url("runs/data/store") and not is_url(tmp_path)
    with pytest.raises(UserError, match=r"^https://example.org/store: unsupported store URL"):
        mirror_store("https://example.org/store", tmp_path)


def test_a_split_index_missing_from_the_upload_names_the_file(tiny_store, monkeypatch, tmp_path):
    upload = tmp_path / "bucket"
    shutil.copytree(tiny_store, upload / "store", ignore=shutil.ignore_patterns("train", "val", "test"))
    monkeypatch.setitem(litdata_downloader._DOWNLOADERS, PREFIX, folder_bucket(upload))
    with pytest.raises(UserError, match=r"^s3://bucket/store/train/index.json: cannot fetch"):
        mirror_store(URL, tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*/manifest.json"))  # an incomplete mirror is never marked complete
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".part")]


def _run_with_bucket(root, *args: str, env: dict | None = None):
    """``mmtrain ARGS`` in a subprocess whose ``s3://`` is served from ``root`` (the CLI path is otherwise real)."""
    code = (
        "import sys; from pathlib import Path; from tests.data.folder_bucket import install; "
        "install(Path(sys.argv[1])); from mmtrain.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    command = [sys.executable, "-c", code, str(root), *args]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)


@pytest.mark.slow
def test_fit_and_eval_on_a_store_url_record_it(tiny_store, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    fit = _run_with_bucket(
        tiny_store.parent, "fit", f"data.store={URL}", f"datamodule.cache_dir={cache}", f"out={run}", *TINY_MODEL
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert json.loads((run / "fit_summary.json").read_text())["global_step"] == 12
    dataset = json.loads((run / "run_manifest.json").read_text())["stamp"]["dataset"]
    assert dataset["url"] == URL and Path(dataset["store"]).parent == cache
    assert dataset["manifest_sha256"] == hashlib.sha256((tiny_store / "manifest.json").read_bytes()).hexdigest()
    assert any(cache.glob("*/train/chunk-*.bin"))

    # eval finds the URL in the checkpoint and reads the test split through the same route
    scored = _run_with_bucket(
        tiny_store.parent, "eval", f"ckpt={run / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / 'eval'}",
        "bootstrap=0", env={"MMTRAIN_CACHE": str(tmp_path / "eval-cache")},
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["stamp"]["dataset"]["url"] == URL and "CIDEr" in metrics
    assert any((tmp_path / "eval-cache" / "stores").glob("*/test/chunk-*.bin"))

    missing = _run_with_bucket(tiny_store.parent, "fit", "data.store=s3://bucket/missing", f"out={tmp_path / 'x'}")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .startswith("mmtrain fit: error: s3://bucket/missing/manifest.json: cannot fetch")
    )
