"""Checkpoint files for ``fit``: written atomically beside their final name, read without unpickling code.

Lightning's own writer stages a checkpoint in the system temporary folder and moves it into place, which is a copy
(not a rename) whenever that folder is on another file system; a kill during the copy would leave a truncated
``last.ckpt``. Checking a resume checkpoint before Lightning loads it turns a foreign or broken file into one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from mmtrain.errors import UserError
from mmtrain.io import atomic_open
from mmtrain.models.loading import check_weights_fit, read_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves with a temporary file in the checkpoint's folder and a rename; loads with ``weights_only=True``.

    A checkpoint already read (to check a resume before Lightning loads it) can be handed over with :meth:`keep`, so
    that the file is read once, not twice (1 GB of tensors took about 1 s to read from the page cache on a 2-core
    machine; a ViT-B captioner with its AdamW state is about 1.6 GB, and a network file system is slower).
    """

    def __init__(self) -> None:
        super().__init__()
        self._kept: tuple[Path, dict] | None = None

    def keep(self, path: str | Path, checkpoint: dict) -> None:
        """The next load of ``path`` returns ``checkpoint`` instead of reading the file (once)."""
        self._kept = (Path(path).resolve(), checkpoint)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_open(path, "wb") as handle:
            torch.save(checkpoint, handle)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        kept, self._kept = self._kept, None
        if kept is not None and map_location is None and kept[0] == Path(path).resolve():
            return kept[1]
        return super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=True)


def check_resumable(path: Path, module) -> dict:
    """The checkpoint at ``path``, read on the CPU; refuse, in one line, one that ``module`` cannot continue from:
    another tokenizer or model shape."""
    checkpoint = read_checkpoint(path)
    tokenizer = checkpoint["mmtrain"].get("tokenizer")
    if tokenizer is None or bytes(tokenizer.numpy().tobytes()) != module.tokenizer.model_bytes:
        raise UserError(
            f"{path}: trained with another tokenizer than this run's; resume with the same data.store and decoder"
        )
    stored = {k[len("captioner.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("captioner.")}
    check_weights_fit(module.captioner, stored, path)
    return checkpoint
