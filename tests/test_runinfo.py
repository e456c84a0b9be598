"""Run stamps: code commit, versions, hardware, dataset checksums; never torch, never a failure over git."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

from mmtrain import runinfo
from mmtrain.runinfo import METRICS_VERSION, RUN_MANIFEST, git_state, run_stamp, write_run_manifest

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def package_repo(tmp_path: Path) -> Path:
    """A git checkout holding a committed package folder ``pkg/`` with an ``__init__.py``."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    return repo


def _store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    manifest = {
        "format_version": 1,
        "config_hash": "abc123def4567890",
        "splits": {
            "train": {"images": 96, "checksum": "11" * 32},
            "val": {"images": 16, "checksum": "22" * 32},
        },
    }
    (store / "manifest.json").write_text(json.dumps(manifest))
    return store


@needs_git
def test_git_state_reports_the_commit_and_dirty_flag(package_repo):
    head = _git(package_repo, "rev-parse", "HEAD")
    assert git_state(package_repo / "pkg") == {"commit": head, "dirty": False}
    (package_repo / "pkg" / "__init__.py").write_text("x = 2\n")
    assert git_state(package_repo / "pkg") == {"commit": head, "dirty": True}


@needs_git
def test_untracked_files_do_not_make_the_checkout_dirty(package_repo):
    (package_repo / "runs").mkdir()
    (package_repo / "runs" / "out.json").write_text("{}")
    assert git_state(package_repo / "pkg")["dirty"] is False


@needs_git
def test_an_untracked_package_inside_another_checkout_has_no_commit(package_repo):
    installed = package_repo / ".venv" / "site-packages" / "pkg"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("x = 1\n")
    assert git_state(installed) is None


def test_git_state_is_none_outside_a_checkout_and_without_git(tmp_path, monkeypatch):
    assert git_state(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_state(Path(runinfo.__file__).parent) is None


def test_stamp_records_versions_dataset_and_metric_version(tmp_path):
    stamp = run_stamp(store=_store(tmp_path), extra={"command": "eval"})
    assert stamp["packages"]["numpy"] == metadata.version("numpy")
    assert stamp["packages"]["hydra-core"] == metadata.version("hydra-core")
    assert set(runinfo.PACKAGES) <= set(stamp["packages"])
    assert stamp["dataset"]["config_hash"] == "abc123def4567890"
    assert stamp["dataset"]["checksums"] == {"train": "11" * 32, "val": "22" * 32}
    assert stamp["dataset"]["images"] == {"train": 96, "val": 16}
    assert stamp["metrics_version"] == METRICS_VERSION
    assert stamp["extra"] == {"command": "eval"}
    assert stamp["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert stamp["created_utc"].endswith("+00:00")
    assert stamp["hardware"]["cpu_count"] >= 1
    json.dumps(stamp)  # JSON-ready as it is


def test_dataset_stamp_has_the_manifest_checksum_and_the_url_it_came_from(tmp_path):
    store = _store(tmp_path)
    dataset = run_stamp(store=store, store_url="s3://bucket/stores/tiny")["dataset"]
    assert dataset["manifest_sha256"] == hashlib.sha256((store / "manifest.json").read_bytes()).hexdigest()
    assert dataset["url"] == "s3://bucket/stores/tiny"
    (store / "manifest.json").write_text((store / "manifest.json").read_text() + " ")
    assert run_stamp(store=store)["dataset"]["manifest_sha256"] != dataset["manifest_sha256"]
    assert "url" not in run_stamp(store=store)["dataset"]


def test_absent_packages_are_none():
    assert runinfo.package_versions(("numpy", "no-such-distribution-xyz")) == {
        "numpy": metadata.version("numpy"),
        "no-such-distribution-xyz": None,
    }


def test_a_source_checkout_that_is_not_installed_still_records_mmtrains_version(monkeypatch):
    # Run from a checkout on PYTHONPATH (as on a machine where only the dependencies are installed), the
    # distribution metadata is absent; the stamp falls back to the package's own version.
    import mmtrain

    real = metadata.version

    def no_mmtrain(name):
        if name == "mmtrain":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(runinfo.metadata, "version", no_mmtrain)
    assert runinfo.package_versions()["mmtrain"] == mmtrain.__version__
    assert run_stamp()["code"]["version"] == mmtrain.__version__


def test_missing_or_broken_manifest_is_noted_not_raised(tmp_path):
    assert run_stamp(store=tmp_path)["dataset"] == {"store": str(tmp_path), "error": "no manifest.json"}
    (tmp_path / "manifest.json").write_text("{not json")
    assert "unreadable" in run_stamp(store=tmp_path)["dataset"]["error"]
    assert run_stamp()["dataset"] is None


def test_gpus_are_read_only_through_an_already_imported_torch(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert runinfo.hardware()["gpus"] is None
    cuda = types.SimpleNamespace(
        is_available=lambda: True, device_count=lambda: 2, get_device_name=lambda i: f"NVIDIA H200 #{i}"
    )
    fake_torch = types.SimpleNamespace(cuda=cuda, version=types.SimpleNamespace(cuda="12.8"))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    assert runinfo.hardware()["gpus"] == {"cuda": "12.8", "devices": ["NVIDIA H200 #0", "NVIDIA H200 #1"]}


def test_a_broken_cuda_driver_is_reported_not_raised(monkeypatch):
    def broken() -> bool:
        raise RuntimeError("driver too old")

    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=broken), version=None)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    assert runinfo.hardware()["gpus"] == {"error": "RuntimeError: driver too old"}


def test_stamping_never_imports_torch():
    code = (
        "import sys; from mmtrain.runinfo import run_stamp; s = run_stamp(); "
        "assert 'torch' not in sys.modules, 'torch imported'; assert s['hardware']['gpus'] is None; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_run_manifest_is_written_whole_with_config_and_stamp(tmp_path):
    run_dir = tmp_path / "run"
    config = {"optim": {"lr": 1e-3}, "out": Path("runs/x"), "trainer": {"devices": "auto"}}
    written = write_run_manifest(run_dir, config, store=_store(tmp_path), extra={"command": "fit"})
    on_disk = json.loads((run_dir / RUN_MANIFEST).read_text())
    assert on_disk == written
    assert on_disk["config"] == {"optim": {"lr": 1e-3}, "out": "runs/x", "trainer": {"devices": "auto"}}
    assert on_disk["stamp"]["dataset"]["config_hash"] == "abc123def4567890"
    assert on_disk["stamp"]["extra"] == {"command": "fit"}
    assert sorted(p.name for p in run_dir.iterdir()) == [RUN_MANIFEST]  # no temporary file left behind
