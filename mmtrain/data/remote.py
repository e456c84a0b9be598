"""Stores on object storage: ``data.store=s3://BUCKET/PATH`` (or ``gs://``, ``azure://``), read through LitData.

A store uploaded whole (``aws s3 sync STORE s3://...``) is used in place. Its small files (manifest, tokenizer,
reference captions, extras such as scene files, each split's ``index.json``) are fetched with LitData's downloader
for the URL's scheme into a local mirror folder under the cache dir; the chunks stream into the same folder through
LitData's ``StreamingDataset`` as training reads them. Everything downstream reads the mirror like a local store.

The mirror folder is named after the URL and the bytes of the remote manifest, so a store uploaded again after a new
``preprocess`` gets a fresh folder instead of stale chunks. Like a store, a mirror is complete once its
``manifest.json`` exists, which is written last.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

from mmtrain.errors import UserError
from mmtrain.io import write_bytes

SCHEMES = ("s3://", "gs://", "azure://")  # LitData's cloud downloaders (boto3, google-cloud-storage, azure)
CACHE_ENV = "MMTRAIN_CACHE"
MANIFEST = "manifest.json"


URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # a URI scheme (RFC 3986) followed by "://"


def is_url(location: str | os.PathLike) -> bool:
    """Whether ``location`` names a remote resource (``scheme://...``) rather than a local path."""
    return bool(URL.match(str(location)))


def default_cache_dir() -> Path:
    """``$MMTRAIN_CACHE/stores``, else ``~/.cache/mmtrain/stores``."""
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mmtrain"
    return Path(base).expanduser() / "stores"


def store_files(manifest: dict) -> list[str]:
    """The small files of a store besides its manifest, relative to the store root, as named by the manifest."""
    files = [str(manifest.get("tokenizer", {}).get("file", "tokenizer.model"))]
    for split, info in manifest.get("splits", {}).items():
        files.append(f"references_{split}.json")
        if info.get("images"):  # an empty split is an empty folder without an index
            files.append(f"{split}/index.json")
    return files + [str(name) for name in manifest.get("extras", [])]


def mirror_store(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch the small files of the store at ``url`` into a local mirror folder; return that folder.

    Args:
        url: ``s3://``, ``gs://`` or ``azure://`` folder written by ``mmtrain preprocess`` and uploaded whole.
        cache_dir: where mirrors live (:func:`default_cache_dir` when None); chunks are cached there too.

    Raises:
        UserError: unsupported scheme, unreachable URL, missing credentials or a file missing from the store.
    """
    url = url.rstrip("/")
    if not url.startswith(SCHEMES):
        raise UserError(f"{url}: unsupported store URL; use a local folder or one of {', '.join(SCHEMES)}")
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    downloader = _downloader(url, root)
    manifest_bytes = _fetch(downloader, url, MANIFEST, root / ".incoming" / f"{uuid.uuid4().hex}.json", keep=False)
    try:
        manifest = json.loads(manifest_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{url}/{MANIFEST}: not a store manifest ({type(err).__name__})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise UserError(f"{url}/{MANIFEST}: not a store manifest (no splits)")
    digest = hashlib.sha256(url.encode() + b"\0" + manifest_bytes).hexdigest()[:12]
    mirror = root / f"{url.rsplit('/', 1)[-1]}-{digest}"
    if not (mirror / MANIFEST).is_file():
        for name in store_files(manifest):
            _fetch(downloader, url, name, mirror / name)
        write_bytes(mirror / MANIFEST, manifest_bytes)  # last: marks the mirror complete
    return mirror


def split_source(url: str, mirror: Path, split: str) -> Any:
    """LitData's input for one split of a remote store: chunks from ``URL/split``, cached in ``mirror/split``."""
    from litdata.streaming.resolver import Dir

    return Dir(path=str(mirror / split), url=f"{url.rstrip('/')}/{split}")


def _downloader(url: str, root: Path):
    from litdata.streaming.downloader import get_downloader

    try:
        return get_downloader(url, str(root), [])
    except Exception as err:  # noqa: BLE001 - e.g. the scheme's client library is not installed
        raise UserError(f"{url}: cannot open the store ({_one_line(err)})") from None


def _fetch(downloader, url: str, name: str, target: Path, *, keep: bool = True) -> bytes:
    """Download ``url/name`` to ``target`` (atomically); return its bytes. Nothing is left behind unless ``keep``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    try:
        downloader.download_file(f"{url}/{name}", str(part))
        data = part.read_bytes()
        if keep:
            os.replace(part, target)
        return data
    except Exception as err:  # noqa: BLE001 - any transport error becomes one line naming the URL
        raise UserError(
            f"{url}/{name}: cannot fetch ({_one_line(err)}); check the URL and storage credentials"
        ) from None
    finally:
        part.unlink(missing_ok=True)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no detail"
    return f"{type(err).__name__}: {text[:200]}"
