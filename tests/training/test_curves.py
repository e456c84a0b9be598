"""RUN/curves.png: drawn at each validation, and at the end of training only when points came after it."""

from __future__ import annotations

import json
from types import SimpleNamespace

from PIL import Image

from mmtrain.training.curves import Curves


def test_the_end_of_training_redraws_only_when_points_came_after_the_last_validation(tmp_path):
    curves = Curves(tmp_path / "curves.png")
    curves.train = [(1, 4.0, 1e-3), (2, 3.9, 1e-3), (4, 3.7, 5e-4)]
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, global_step=4,
                              callback_metrics={"val/CIDEr": 0.25, "train/loss": 3.7})  # fmt: skip
    curves.on_validation_end(trainer, None)
    with Image.open(curves.path) as image:
        assert image.format == "PNG" and image.width >= 800 and image.height >= 200
    curves.path.unlink()
    curves.on_train_end(trainer, None)  # the validation at the last step drew these very points
    assert not curves.path.exists()
    curves.train.append((6, 3.5, 1e-4))  # two steps trained after the last validation
    curves.on_train_end(trainer, None)
    assert curves.path.is_file()
    drawn = json.loads(curves.path.with_suffix(".json").read_text())
    assert [point[0] for point in drawn["train"]] == [1, 2, 4, 6] and drawn["val"] == {"val/CIDEr": [[4, 0.25]]}
