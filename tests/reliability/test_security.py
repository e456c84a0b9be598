"""Security: no unpickling of user files, escaped HTML, no network at run time, no writes outside ``out``."""

from __future__ import annotations

import builtins
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmtrain.outputs.gallery import write_gallery
from tests.conftest import ROOT
from tests.reliability.conftest import assert_one_line_error

SOURCES = sorted((ROOT / "mmtrain").rglob("*.py"))


def test_every_torch_load_in_mmtrain_passes_weights_only_true():
    calls = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"torch\.load\(", text):
            depth, end = 1, match.end()
            while depth:  # the call's full argument list, across lines
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            calls.append((path.relative_to(ROOT), text[match.start() : end]))
    assert calls, "torch.load is used to read checkpoints"
    unsafe = [(str(path), call) for path, call in calls if "weights_only=True" not in call]
    assert not unsafe


def test_nothing_in_mmtrain_unpickles():
    patterns = ["pickle.load", "weights_only=False", "allow_pickle=True", "import dill", "joblib.load"]
    found = [(p.name, s) for p in SOURCES for s in patterns if s in p.read_text(encoding="utf-8")]
    assert not found


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (str(self.marker), "w")


@pytest.mark.parametrize("command", ["eval", "fit"])
def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path, cli, tiny_store, command):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"mmtrain": {"x": _Payload(marker)}, "state_dict": {}}, evil)
    args = ["eval", f"ckpt={evil}"] if command == "eval" else ["fit", f"data.store={tiny_store}", f"resume={evil}"]
    code, stderr = cli(*args, f"out={tmp_path / 'out'}")
    assert_one_line_error(code, stderr, str(evil), "not a readable checkpoint")
    assert not marker.exists()


def test_gallery_escapes_hostile_file_names_and_ids(tmp_path):
    folder = tmp_path / '"><script>alert(1)<'
    folder.mkdir()
    rows = []
    for index, name in enumerate(["<img src=x onerror=alert(1)>.png", "a&b'\".png"]):
        Image.fromarray(np.full((8, 8, 3), 40 * index, np.uint8)).save(folder / name)
        rows.append({"file": str(folder / name), "image_id": f"<b>{index}</b>", "caption": "a <i>caption</i>"})
    for embed in (True, False):
        markup = write_gallery(tmp_path / "page.html", rows, title="<script>x</script>", embed=embed).read_text()
        assert "<script" not in markup and "<img src=x" not in markup and "<b>" not in markup and "<i>" not in markup
        assert "&lt;img src=x onerror=alert(1)&gt;.png" in markup and "&lt;b&gt;0&lt;/b&gt;" in markup


@pytest.mark.slow
def test_every_command_runs_with_the_network_blocked(audited):
    for command, result in audited.results.items():
        assert result.returncode == 0, (command, result.stderr[-3000:])
    attempts = [detail for kind, detail in audited.events if kind == "network"]
    assert not attempts


@pytest.mark.slow
def test_no_command_writes_outside_its_output_folder(audited):
    base, out = audited.base, audited.out
    assert not list((base / "cwd").rglob("*")), "files appeared in the working directory"
    # torch creates an empty torchinductor_$USER folder in the temporary folder when Lightning imports it; that is
    # torch's compile cache, not an output, so it is the one entry allowed there.
    left = [
        p for p in (base / "tmp").rglob("*") if not p.relative_to(base / "tmp").parts[0].startswith("torchinductor_")
    ]
    assert not left, "files were left in the temporary folder"
    # fit draws curves.png with matplotlib, which keeps its font list in ~/.cache/matplotlib (and makes an empty
    # ~/.config/matplotlib): a library's per-user cache, as every matplotlib program has. Nothing else may appear.
    home = base / "home"
    caches = [home / ".cache" / "matplotlib", home / ".config" / "matplotlib"]
    strays = [p for p in home.rglob("*") if not any(c.is_relative_to(p) or p.is_relative_to(c) for c in caches)]
    assert not strays, "files appeared in the home folder"
    assert not [p for p in caches[1].rglob("*")], "matplotlib's config folder is expected empty"
    assert audited.raw_unchanged, "preprocess changed its input folder"
    audit_log = base / "audit.jsonl"
    allowed = [out, caches[0]]
    outside = sorted(
        {str(p) for p in audited.writes() if not any(p.is_relative_to(a) for a in allowed)} - {str(audit_log)}
    )
    assert not outside
