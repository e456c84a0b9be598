"""Run every command the way a user would, with the network blocked and every direct file write recorded.

A ``sitecustomize`` module on ``PYTHONPATH`` (loaded by each ``mmtrain`` process and its forked workers) makes
``socket.connect`` and name lookups fail, and appends to a log each network attempt and each file Python opens for
writing. Files written through :func:`mmtrain.io.atomic_open` are opened from a temporary descriptor, so the log
holds only files written in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import TINY_DATA, TINY_MODEL, run_cli

SITECUSTOMIZE = """
import builtins, io, json, os, socket

_open, _log = builtins.open, os.environ["MMTRAIN_AUDIT_LOG"]


def _note(kind, detail):
    with _open(_log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps([kind, detail]) + "\\n")


def _recording_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, bytes, os.PathLike)) and any(flag in mode for flag in "wax+"):
        _note("write", os.path.abspath(os.fsdecode(file)))
    return _open(file, mode, *args, **kwargs)


def _refuse(what):
    def refuse(*args, **kwargs):
        _note("network", what + " " + repr(args)[:200])
        raise OSError("network access is blocked in this test")
    return refuse


_connect = socket.socket.connect


def _connect_local_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        return _refuse("connect")(self, address)
    return _connect(self, address)


builtins.open = io.open = _recording_open
socket.socket.connect = _connect_local_only
socket.socket.connect_ex = lambda self, address: _connect_local_only(self, address) or 0
socket.getaddrinfo = _refuse("getaddrinfo")
socket.create_connection = _refuse("create_connection")
"""


@dataclass
class AuditedRuns:
    """What the audited run of every command left behind."""

    base: Path  # holds cwd/, home/, tmp/, out/ and the raw data used
    out: Path  # every command's out= is inside this folder
    raw: Path  # the built-in dataset that preprocess read (generated before the audit)
    results: dict  # command -> CompletedProcess
    events: list[tuple[str, str]]  # ("write", path) and ("network", what)
    raw_unchanged: bool = True  # set by the fixture: preprocess left its input folder as it was

    def writes(self) -> list[Path]:
        return [Path(detail) for kind, detail in self.events if kind == "write"]


def audited_runs(base: Path, tiny_store: Path) -> AuditedRuns:
    """preprocess, fit, eval, caption (with a gallery) and export, each from an empty working directory."""
    folders = {name: base / name for name in ("site", "cwd", "home", "tmp", "out")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    (folders["site"] / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = base / "audit.jsonl"
    env = {
        "PYTHONPATH": str(folders["site"]),
        "MMTRAIN_AUDIT_LOG": str(log),
        "HOME": str(folders["home"]),
        "TMPDIR": str(folders["tmp"]),
        "XDG_CACHE_HOME": str(folders["home"] / ".cache"),
    }
    raw, out = tiny_store.parent / "raw", folders["out"]
    ckpt = out / "fit" / "checkpoints" / "last.ckpt"
    commands = {
        "preprocess": ["preprocess", f"data.root={raw}", f"out={out / 'store'}", *TINY_DATA],
        "fit": ["fit", f"data.store={out / 'store'}", f"out={out / 'fit'}", *TINY_MODEL, "trainer.max_steps=4"],
        "eval": ["eval", f"ckpt={ckpt}", f"out={out / 'eval'}", "bootstrap=10", "meteor=false"],
        "caption": [
            "caption",
            f"ckpt={ckpt}",
            f"inputs=[{raw / 'test2017'}]",
            f"out={out / 'caption'}",
            f"html={out / 'caption' / 'gallery.html'}",
        ],
        "export": ["export", f"ckpt={ckpt}", f"out={out / 'bundle'}"],
    }
    results = {name: run_cli(*args, cwd=folders["cwd"], env=env, timeout=600) for name, args in commands.items()}
    events = [tuple(json.loads(line)) for line in log.read_text().splitlines()] if log.exists() else []
    return AuditedRuns(base, out, raw, results, events)
