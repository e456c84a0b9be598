"""Exit codes: docs/errors.md's table is what the code returns, and every command answers a missing file alike."""

from __future__ import annotations

import re

import pytest

from mmtrain import errors
from mmtrain.cli import main
from tests.conftest import ROOT, TINY_MODEL, run_in_process
from tests.reliability.conftest import assert_one_line_error


def _documented_codes() -> dict[int, str]:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", section, flags=re.M)}


def test_the_documented_table_lists_exactly_the_codes_the_code_uses():
    constants = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert set(_documented_codes()) == constants == {0, 1, 2, 3, 130, 141}


def test_unknown_command_is_an_error(capsys):
    assert main(["train"]) == errors.EXIT_UNKNOWN_COMMAND
    assert "unknown command 'train'" in capsys.readouterr().err


def test_missing_store_is_one_line_error(tmp_path):
    result = run_in_process("fit", f"data.store={tmp_path / 'nothing'}", f"out={tmp_path / 'run'}")
    assert result.returncode == 1
    assert "no complete preprocessed store" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command,args,message",
    [
        ("preprocess", ["data=coco2017", "data.root=MISSING"], "annotation file not found"),
        ("eval", ["ckpt=MISSING"], "no such checkpoint file or bundle folder"),
        ("caption", ["ckpt=MISSING", "inputs=[x.jpg]"], "no such checkpoint file or bundle folder"),
        ("export", ["ckpt=MISSING"], "no such checkpoint file or bundle folder"),
        ("eval", ["results=MISSING", "references=MISSING"], "file not found"),
    ],
)
def test_every_command_names_a_missing_file_on_one_line_and_exits_1(tmp_path, cli, command, args, message):
    missing = str(tmp_path / "missing")
    code, stderr = cli(command, *[a.replace("MISSING", missing) for a in args], f"out={tmp_path / 'out'}")
    assert_one_line_error(code, stderr, missing, message)


def test_debug_true_shows_the_traceback(tmp_path, cli):
    missing = tmp_path / "missing.json"
    code, stderr = cli("eval", f"results={missing}", f"references={missing}", f"out={tmp_path}", "debug=true")
    assert code == 1
    assert "Traceback" in stderr and "UserError" in stderr and str(missing) in stderr


def test_caption_exits_3_when_nothing_could_be_read(tiny_checkpoint, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"")
    result = run_in_process("caption", f"ckpt={tiny_checkpoint}", f"inputs=[{broken}]", f"out={tmp_path / 'o'}")
    assert_one_line_error(
        result.returncode, result.stderr, "no image could be captioned", exit_code=errors.EXIT_PARTIAL
    )
    assert f"skipped {broken}: zero_bytes" in result.stderr


@pytest.mark.slow
def test_ctrl_c_exits_130(tiny_store, tmp_path):
    import signal
    import subprocess
    import time

    from tests.conftest import MMTRAIN

    out = tmp_path / "run"
    overrides = [*TINY_MODEL, "trainer.max_steps=100000", "trainer.val_check_interval=100000"]
    process = subprocess.Popen(
        [*MMTRAIN, "fit", f"data.store={tiny_store}", f"out={out}", *overrides],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not (out / "logs").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == errors.EXIT_INTERRUPTED, stderr[-2000:]
    assert "mmtrain fit: interrupted: SIGINT at step" in stderr and "Traceback" not in stderr
    assert (out / "checkpoints" / "last.ckpt").is_file()
