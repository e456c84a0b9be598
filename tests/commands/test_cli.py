"""The console script's help, config printing and error messages."""

from __future__ import annotations

from mmtrain.cli import COMMANDS, main
from tests.conftest import run_cli


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert f"  {command} " in text


def test_unknown_command_is_an_error(capsys):
    assert main(["train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err


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


def test_wrong_override_gives_hydras_error_without_traceback():
    result = run_cli("fit", "encoder=nope")
    assert result.returncode == 1
    assert "Could not find 'encoder/nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_store_is_one_line_error(tmp_path):
    result = run_cli("fit", f"data.store={tmp_path / 'nothing'}", f"out={tmp_path / 'run'}")
    assert result.returncode == 1
    assert "no complete preprocessed store" in result.stderr and "Traceback" not in result.stderr


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


def test_bad_results_file_is_one_line_with_exit_1(tmp_path):
    refs = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"id": 1, "image_id": 1, "caption": "a dog"}]}
    import json

    (tmp_path / "refs.json").write_text(json.dumps(refs))
    (tmp_path / "res.json").write_text('[{"image_id": 1, "caption": "a dog"')
    result = run_cli(
        "eval",
        f"results={tmp_path / 'res.json'}",
        f"references={tmp_path / 'refs.json'}",
        f"out={tmp_path / 'out'}",
        "meteor=false",
    )
    assert result.returncode == 1
    assert "res.json" in result.stderr and "Traceback" not in result.stderr
