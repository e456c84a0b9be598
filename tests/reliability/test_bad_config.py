"""Config mistakes: unknown keys get the nearest existing keys, unknown group options Hydra's list of options, a
wrong-typed value names the key and the type it needs; each is one line, exit 1 and no traceback."""

from __future__ import annotations

import pytest

from mmtrain.cli import COMMANDS
from tests.conftest import run_cli


def test_wrong_override_gives_hydras_error_without_traceback():
    result = run_cli("fit", "encoder=nope")
    assert result.returncode == 1
    assert "Could not find 'encoder/nope'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_key_is_refused_by_every_command(cli, command):
    code, stderr = cli(command, "nope=1")
    assert code == 1
    assert f"no key nope in the {command} config" in stderr and "+nope" not in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command,override", [("preprocess", "data=nope"), ("eval", "decoding=nope")])
def test_an_unknown_group_option_names_the_group(cli, command, override):
    code, stderr = cli(command, override)
    group = override.split("=")[0]
    assert code == 1 and f"Could not find '{group}/nope'" in stderr and "Traceback" not in stderr


def test_scst_without_a_starting_checkpoint_is_refused(cli, tiny_store, tmp_path):
    code, stderr = cli("fit", "objective=scst", f"data.store={tiny_store}", f"out={tmp_path / 'run'}")
    assert code == 1 and "objective=scst" in stderr and "init_from=" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
