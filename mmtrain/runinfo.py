"""What a result was produced with: code commit, package versions, hardware, dataset checksums, metric version.

``run_stamp()`` gathers it as one JSON-ready dict; ``write_run_manifest()`` saves it with the resolved config as
``RUN/run_manifest.json``. Nothing here imports torch: GPU names are read only when the caller has already imported
it (training and captioning have; scoring a results file has not and must not).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

# Bump when a metric's numbers change (tokenizer rules, CIDEr-D sigma or clipping, BLEU brevity penalty, ...).
METRICS_VERSION = "coco-caption-equivalent/1"
RUN_MANIFEST = "run_manifest.json"
PACKAGES = (
    "mmtrain",
    "torch",
    "torchvision",
    "timm",
    "pytorch-lightning",
    "hydra-core",
    "litdata",
    "sentencepiece",
    "pycocotools",
    "numpy",
)
SOURCE_DIR = Path(__file__).resolve().parent
GIT_TIMEOUT_S = 10


def run_stamp(*, store: Path | None = None, store_url: str | None = None, extra: dict | None = None) -> dict[str, Any]:
    """Everything needed to say what produced a result, as a JSON-ready dict.

    Args:
        store: the preprocessed store the run read; its manifest's checksum, config hash and split checksums are
            recorded.
        store_url: the URL the store was read from when ``store`` is the local mirror of a remote store.
        extra: caller's own fields (command, checkpoint, ...), kept under ``"extra"``.
    """
    stamp: dict[str, Any] = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code": {"version": _version("mmtrain"), "source": str(SOURCE_DIR), "git": git_state(SOURCE_DIR)},
        "packages": package_versions(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "hardware": hardware(),
        "dataset": dataset_stamp(Path(store), url=store_url) if store is not None else None,
        "metrics_version": METRICS_VERSION,
    }
    if extra:
        stamp["extra"] = dict(extra)
    return stamp


def write_run_manifest(run_dir: Path, cfg_container: dict, **kw: Any) -> dict[str, Any]:
    """Write ``run_dir/run_manifest.json`` (resolved config + :func:`run_stamp`) atomically; return its content.

    Args:
        run_dir: the run's output folder.
        cfg_container: the resolved config, e.g. ``OmegaConf.to_container(cfg, resolve=True)``.
        **kw: passed to :func:`run_stamp` (``store=``, ``store_url=``, ``extra=``).
    """
    from mmtrain.io import write_json

    manifest = {"stamp": run_stamp(**kw), "config": _json_ready(cfg_container)}
    write_json(Path(run_dir) / RUN_MANIFEST, manifest)
    return manifest


def git_state(path: Path) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout that tracks ``path``; None when there is none (never raises).

    ``dirty`` counts changes to tracked files only: untracked run outputs beside the code do not make a run dirty.
    A package installed into a virtual environment that happens to sit inside some checkout is not attributed to
    it: ``path`` itself must be tracked there.
    """
    commit = _git(path, "rev-parse", "HEAD")
    if commit is None or _git(path, "ls-files", "--error-unmatch", "--", "__init__.py") is None:
        return None
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _git(path: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git, no folder, hung
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent), read from metadata without importing it."""
    return {name: _version(name) for name in names}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        if name == "mmtrain":  # run from a source checkout on PYTHONPATH, not installed: the package still knows
            from mmtrain import __version__

            return __version__
        return None


def hardware() -> dict[str, Any]:
    """CPU model, core counts, memory, and the GPUs when torch is already imported (None otherwise)."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpus": _gpus(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            brand = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=False
            )
            if brand.returncode == 0 and brand.stdout.strip():
                return brand.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or None


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def _gpus() -> dict[str, Any] | None:
    """CUDA devices through the torch the caller imported; None (not probed) when torch is not imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return {"cuda": getattr(torch.version, "cuda", None), "devices": []}
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return {"cuda": getattr(torch.version, "cuda", None), "devices": names}
    except Exception as err:  # noqa: BLE001 - a broken driver must not fail the run that is being stamped
        return {"error": f"{type(err).__name__}: {err}"[:200]}


def dataset_stamp(store: Path, *, url: str | None = None) -> dict[str, Any]:
    """Checksum, config hash and per-split checksums of ``store/manifest.json``; a missing or broken one is noted.

    ``manifest_sha256`` is the sha256 of the manifest file's bytes: two runs with the same value read the same store
    (the manifest holds every split's sample checksum). ``url`` records where a mirrored remote store came from.
    """
    stamp: dict[str, Any] = {"store": str(store)}
    if url is not None:
        stamp["url"] = url
    path = store / "manifest.json"
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return {**stamp, "error": "no manifest.json"}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return {**stamp, "error": f"unreadable manifest.json ({type(err).__name__})"}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits", {}), dict):
        return {**stamp, "error": "manifest.json is not a store manifest"}
    splits = {name: split for name, split in manifest.get("splits", {}).items() if isinstance(split, dict)}
    return {
        **stamp,
        "manifest_sha256": hashlib.sha256(raw).hexdigest(),
        "format_version": manifest.get("format_version"),
        "config_hash": manifest.get("config_hash"),
        "checksums": {name: split.get("checksum") for name, split in splits.items()},
        "images": {name: split.get("images") for name, split in splits.items()},
    }


def _json_ready(value: Any) -> Any:
    """The config as plain JSON types (paths and other objects become strings)."""
    return json.loads(json.dumps(value, default=str))


def store_dataset(manifest: dict, store: str | Path) -> dict[str, Any]:
    """What a store was made from, as its manifest says: name, source, root, and each split's checksum and size."""
    made_from = manifest.get("dataset") or {}
    splits = {name: split for name, split in manifest.get("splits", {}).items() if isinstance(split, dict)}
    return {
        "name": made_from.get("name", "unknown (the store predates dataset records)"),
        "store": str(store),
        "root": made_from.get("root"),
        "source": made_from.get("source"),
        "checksums": {name: split.get("checksum") for name, split in splits.items()},
        "images": {name: split.get("images") for name, split in splits.items()},
        "resize": manifest.get("resize") or {"size": manifest.get("image_size")},
    }


def best_validation(metrics_csv: Path, monitor: str) -> dict[str, Any] | None:
    """The validation row of ``metrics.csv`` with the highest ``monitor`` (the first such, as the checkpoint keeps).

    Returns ``{"step": N, "metrics": {name: value}}`` with that row's validation figures, or None before any.
    """
    import csv

    try:
        with open(metrics_csv, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return None
    best: dict[str, Any] | None = None
    for row in rows:
        value = _number(row.get(monitor))
        if value is None or (best is not None and value <= best["value"]):
            continue
        figures = {k: _number(v) for k, v in row.items() if k.startswith("val") and _number(v) is not None}
        # Lightning logs a validation at the index of the last trained step; the checkpoint counts steps done
        best = {"value": value, "step": int(float(row.get("step") or 0)) + 1, "metrics": figures}
    return None if best is None else {"step": best["step"], "metrics": best["metrics"]}


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
