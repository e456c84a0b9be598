"""The console script's help, config printing and error messages."""

from __future__ import annotations

import pytest

from mmtrain.cli import COMMANDS, main
from tests.conftest import run_cli, run_in_process


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert f"  {command} " in text


def test_fit_help_shows_config_groups():
    result = run_cli("fit", "--help")
    assert result.returncode == 0
    for group in ("encoder:", "fusion:", "decoder:", "data:", "optim:", "trainer:"):
        assert group in result.stdout
    assert "cross_attention" in result.stdout and "prefix" in result.stdout


@pytest.fixture(scope="module")
def helps() -> dict:
    """``mmtrain COMMAND --help`` of every command, run once in process (Hydra lists the groups in about 2 s each)."""
    return {command: run_in_process(command, "--help") for command in COMMANDS}


def test_every_command_answers_help(helps):
    for command, result in helps.items():
        assert result.returncode == 0, (command, result.stderr[-500:])
        assert "Powered by Hydra" in result.stdout or "== Config ==" in result.stdout


def test_cfg_job_prints_the_resolved_config():
    result = run_cli("fit", "fusion=prefix", "--cfg", "job")
    assert result.returncode == 0
    assert "PrefixFusion" in result.stdout and "max_steps" in result.stdout


def test_scoring_a_results_file_never_imports_torch(tmp_path):
    import json
    import subprocess
    import sys

    refs = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "caption": "a dog runs"}],
    }
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": 1, "caption": "a dog runs"}]))
    code = (
        "import sys; from mmtrain.cli import main; "
        f"rc = main(['eval', 'results={tmp_path / 'res.json'}', 'references={tmp_path / 'refs.json'}', "
        f"'out={tmp_path / 'out'}', 'meteor=false', 'bootstrap=10']); "
        "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["Bleu_1"] > 0.99


def test_command_help_lists_every_option_with_its_comment(helps):
    text = helps["caption"].stdout
    assert "html=null" in text and "write an HTML gallery here" in text
    assert "references=null" in text and "show references and CIDEr-D in the gallery" in text
    text = helps["eval"].stdout
    assert "allow_partial=false" in text and "compare=null" in text and "paired bootstrap" in text
    assert "data.val_fraction=0.0" in helps["preprocess"].stdout


def test_the_options_page_is_generated_from_the_configs():
    from mmtrain.cli import options_markdown
    from tests.conftest import ROOT

    page = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    regenerate = 'python -c "from mmtrain.cli import write_options_page; write_options_page()"'
    assert page == options_markdown(), f"docs/options.md is stale; regenerate it: {regenerate}"
    for needle in ("| `html` |", "| `references` |", "| `compare` |", "| `allow_partial` |", "| `data.val_fraction` |"):
        assert needle in page


@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"]], ids=["mmtrain", "fit"])
def test_a_closed_stdout_ends_the_command_quietly(args):
    """``mmtrain fit --help | head -3``: the reader closes the pipe early; no traceback, the status of SIGPIPE."""
    import os
    import subprocess

    from mmtrain.errors import EXIT_BROKEN_PIPE
    from tests.conftest import MMTRAIN, ROOT

    read, write = os.pipe()
    os.close(read)  # closed before the first write: every write fails, whatever the size of the output
    try:
        result = subprocess.run(
            [*MMTRAIN, *args], cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(write)
    assert result.returncode == EXIT_BROKEN_PIPE and result.stderr == ""
