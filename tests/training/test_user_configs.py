"""Your own configs: ``mmtrain fit --config-dir DIR experiment=NAME`` reads DIR/experiment/NAME.yaml (and DIR's
other groups), as ``fit --help`` says."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from tests.conftest import TINY_MODEL, run_in_process

EXPERIMENT = """# @package _global_
# A user's own recipe, kept outside mmtrain: a decoder of their own and a short schedule.
defaults:
  - override /decoder: tiny

trainer:
  max_steps: 3
  val_check_interval: 3
checkpoint_every_n_steps: 3
optim:
  lr: 2.5e-3
"""

DECODER = """# A user's decoder option: mmtrain's small decoder, narrower.
defaults:
  - small
  - _self_

d_model: 32
num_layers: 1
num_heads: 2
"""


def test_fit_help_says_how_to_use_your_own_config_folder():
    result = run_in_process("fit", "--help")
    assert result.returncode == 0
    assert "mmtrain fit --config-dir DIR experiment=NAME reads DIR/experiment/NAME.yaml" in result.stdout


def test_an_experiment_from_the_users_config_dir_trains(tiny_store, tmp_path):
    configs = tmp_path / "my-configs"
    (configs / "experiment").mkdir(parents=True)
    (configs / "decoder").mkdir()
    (configs / "experiment" / "mine.yaml").write_text(EXPERIMENT)
    (configs / "decoder" / "tiny.yaml").write_text(DECODER)
    out = tmp_path / "run"
    model = [o for o in TINY_MODEL if not o.startswith(("trainer.", "decoder."))]  # the experiment sets those
    result = run_in_process("fit", "--config-dir", str(configs), "experiment=mine", f"data.store={tiny_store}",
                            f"out={out}", *model)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    config = OmegaConf.load(out / "config.yaml")
    assert (config.trainer.max_steps, config.optim.lr) == (3, 2.5e-3)
    assert (config.decoder.d_model, config.decoder.num_layers, config.decoder.max_len) == (32, 1, 128)
    assert json.loads((out / "fit_summary.json").read_text())["global_step"] == 3
