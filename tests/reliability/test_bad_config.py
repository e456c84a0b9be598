"""Config mistakes: unknown keys get the nearest existing keys, unknown group options Hydra's list of options, a
wrong-typed value names the key and the type it needs; each is one line, exit 1 and no traceback."""

from __future__ import annotations

import pytest

from mmtrain.cli import COMMANDS
from mmtrain.commands.overrides import KINDS
from tests.conftest import run_cli
from tests.reliability.conftest import run_in_process


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


WRONG = {bool: "maybe", int: "ten", float: "ten", list: "ten", dict: "ten"}  # a value of another kind for each


def _typed_keys(command: str) -> tuple[dict, list[tuple[str, type]]]:
    """The command's default config, and each key whose default has a kind (integer, number, boolean, ...)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mmtrain.cli import CONFIG_DIR
    from mmtrain.commands.overrides import NULLABLE, _kind, _resolved, _select, config_keys

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        defaults = OmegaConf.to_container(compose(config_name=command), resolve=False)
    typed = []
    for key in config_keys(defaults):
        kind = _kind(_resolved(defaults, key, _select(defaults, key)[1])) or NULLABLE.get(key)
        if kind is not None and not key.startswith("hydra."):
            typed.append((key, kind))
    return defaults, typed


def _with(container: dict, key: str, value) -> dict:
    import copy

    changed = copy.deepcopy(container)
    *parents, leaf = key.split(".")
    node = changed
    for part in parents:
        node = node[part]
    node[leaf] = value
    return changed


@pytest.mark.parametrize("command", COMMANDS)
def test_every_typed_key_given_a_value_of_another_kind_is_named_on_one_line(command, tmp_path):
    """Every key of the command's config whose default has a kind is swept with a wrong-kind value (checked as the
    CLI checks it, without composing each time); one sampled key per command goes through the CLI itself."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mmtrain.commands.overrides import type_error

    defaults, typed = _typed_keys(command)
    assert typed, command
    parser = OverridesParser.create()
    for key, kind in typed:
        text = f"{key}={WRONG[kind]}"
        override = parser.parse_overrides([text])[0]
        message = type_error([override], defaults, _with(defaults, key, override.value()))
        assert message is not None and message.startswith(f"{text}: expected ") and "\n" not in message, text
        assert type_error([override], defaults, defaults) is None, key  # its own default is accepted
    key, kind = typed[len(typed) // 2]
    result = run_in_process(command, f"{key}={WRONG[kind]}", f"out={tmp_path / 'run'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mmtrain {command}: error: {key}={WRONG[kind]}: expected "), lines
    assert f"expected {KINDS[kind]} (default: " in lines[0]
