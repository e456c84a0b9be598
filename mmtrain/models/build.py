"""Build a captioner from its plain-dict config (as saved in checkpoints and bundles)."""

from __future__ import annotations

import copy

from mmtrain.errors import UserError
from mmtrain.models.captioner import Captioner

CORE_DECODER = "mmtrain.models.decoder.TransformerDecoder"
RESEARCH_DECODER = "mmtrain.models.research.decoder.ResearchDecoder"
RESEARCH_OPTIONS = ("prefix_experts", "token_mix", "coord_readout")


def build_captioner(model_config: dict, vocab_size: int, *, for_inference: bool = False) -> Captioner:
    """Instantiate encoder, fusion and decoder from ``{encoder, fusion, decoder}`` Hydra nodes.

    With ``for_inference`` the encoder skips pretrained weights: the checkpoint's state dict supplies them.
    """
    from hydra.utils import instantiate

    config = copy.deepcopy(model_config)
    config["decoder"] = upgrade_decoder_config(config["decoder"])
    if for_inference:
        config["encoder"]["pretrained"] = False
        config["encoder"]["checkpoint"] = None
        if "name_or_path" in config["decoder"]:  # a language model: built from its config, weights from the file
            config["decoder"]["pretrained"] = False
    return Captioner(
        encoder=instantiate(config["encoder"]),
        fusion=instantiate(config["fusion"]),
        decoder=instantiate(config["decoder"], _convert_="all"),  # nested options (an LM's config) as plain dicts
        vocab_size=vocab_size,
        contrastive=instantiate(config["contrastive"]) if config.get("contrastive") else None,
    )


def upgrade_decoder_config(decoder: dict) -> dict:
    """A decoder node as saved before the research options left the core decoder, as the decoder is built now.

    Saved configs of the core decoder list ``prefix_experts``, ``qk_norm``, ``token_mix`` and ``coord_readout``.
    Those that are off are dropped; those that are on select :class:`ResearchDecoder`, whose parameter names are the
    ones they had, so the checkpoint loads. QK-norm was removed: a model trained with it is one ``UserError``.
    """
    if decoder.get("_target_") != CORE_DECODER:
        return decoder
    decoder = dict(decoder)
    if decoder.pop("qk_norm", False):
        raise UserError(
            "decoder.qk_norm=true: QK-norm was removed from the decoder (it never helped a recipe), "
            "so this model can no longer be built; see docs/models.md"
        )
    options = {name: decoder.pop(name) for name in RESEARCH_OPTIONS if name in decoder}
    if any(options.values()):
        decoder.update(options, _target_=RESEARCH_DECODER)
    return decoder
