"""The console script's help, config printing and error messages."""

from __future__ import annotations

from mmtrain.cli import COMMANDS, main
from tests.conftest import run_cli


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


def test_every_command_answers_help():
    for command in COMMANDS:
        result = run_cli(command, "--help")
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
