"""The training progress bar describes step-bounded runs sensibly."""

from types import SimpleNamespace

from mmtrain.training.callbacks import StepAwareProgressBar


def _description(max_epochs: int, max_steps: int, epoch: int = 2) -> str:
    bar = StepAwareProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps)
    return bar._get_train_description(epoch).strip()


def test_a_step_bounded_run_names_its_last_step_instead_of_a_negative_epoch():
    # Lightning sets max_epochs=-1 when only max_steps bounds the run; its own bar then read "Epoch 2/-2".
    assert _description(max_epochs=-1, max_steps=120) == "Epoch 2 · to step 120"


def test_an_epoch_bounded_run_keeps_lightnings_epoch_of_last_epoch():
    assert _description(max_epochs=5, max_steps=-1) == "Epoch 2/4"
