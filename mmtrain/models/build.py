"""Build a captioner from its plain-dict config (as saved in checkpoints and bundles)."""

from __future__ import annotations

import copy

from mmtrain.models.captioner import Captioner


def build_captioner(model_config: dict, vocab_size: int, *, for_inference: bool = False) -> Captioner:
    """Instantiate encoder, fusion and decoder from ``{encoder, fusion, decoder}`` Hydra nodes.

    With ``for_inference`` the encoder skips pretrained weights: the checkpoint's state dict supplies them.
    """
    from hydra.utils import instantiate

    config = copy.deepcopy(model_config)
    if for_inference:
        config["encoder"]["pretrained"] = False
        config["encoder"]["checkpoint"] = None
    return Captioner(
        encoder=instantiate(config["encoder"]),
        fusion=instantiate(config["fusion"]),
        decoder=instantiate(config["decoder"]),
        vocab_size=vocab_size,
        contrastive=instantiate(config["contrastive"]) if config.get("contrastive") else None,
    )
