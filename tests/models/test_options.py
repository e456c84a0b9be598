"""Options that mean nothing together are one-line errors; configs and weights saved before the research options
left the core decoder still build and load."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import pytest
import torch

from mmtrain.errors import UserError
from mmtrain.models.build import build_captioner
from mmtrain.models.captioner import Captioner
from mmtrain.models.decoder import TransformerDecoder
from mmtrain.models.encoders import TimmEncoder
from mmtrain.models.fusion.prefix import PrefixFusion
from mmtrain.models.fusion.qformer import QFormerFusion
from mmtrain.models.research.decoder import ResearchDecoder

SAVED = json.loads((Path(__file__).parent / "data" / "saved_before_research_split.json").read_text())
GRID = {"layers": [1, 1, 0, 0], "channels": [8, 16, 16, 16], "stem_width": 8, "output_stride": 8}  # 4x4 at 32 px


def captioner(fusion, **decoder_options) -> Captioner:
    encoder = TimmEncoder(model_name="resnet18", img_size=32, model_kwargs=GRID)
    kind = ResearchDecoder if decoder_options else TransformerDecoder
    decoder = functools.partial(kind, d_model=16, num_layers=2, num_heads=2, **decoder_options)
    return Captioner(encoder=encoder, fusion=fusion, decoder=decoder, vocab_size=40)


@pytest.mark.parametrize(
    ("fusion", "options", "message"),
    [
        (functools.partial(QFormerFusion, num_queries=4, num_heads=2), {"coord_readout": True}, "coord_readout"),
        (functools.partial(PrefixFusion, prefix_len=4, num_heads=2), {"coord_readout": True}, "coord_readout"),
        (functools.partial(QFormerFusion, num_queries=4, num_heads=2), {"prefix_experts": True}, "prefix_experts"),
        (functools.partial(PrefixFusion, prefix_len=4, mapper="mlp", queries="pooled"), {}, "fusion.queries=pooled"),
        (functools.partial(PrefixFusion, prefix_len=4, num_heads=3), {}, "fusion.num_heads=3"),
        (functools.partial(QFormerFusion, num_queries=5, num_heads=2, queries="pooled"), {}, "fusion.num_queries"),
        (functools.partial(PrefixFusion, prefix_len=4, num_heads=2), {"token_mix": 1}, "decoder.token_mix"),
    ],
)
def test_a_meaningless_combination_is_one_line_naming_the_option(fusion, options, message):
    with pytest.raises(UserError, match=message) as error:
        captioner(fusion, **options)
    assert "\n" not in str(error.value)


def test_the_decoder_width_must_split_into_heads():
    with pytest.raises(UserError, match="decoder.d_model=30 must be a multiple of decoder.num_heads=4"):
        TransformerDecoder(vocab_size=40, d_model=30, num_heads=4)


def test_pooled_queries_give_positions_that_the_readout_reads():
    model = captioner(
        functools.partial(QFormerFusion, num_queries=4, num_heads=2, queries="pooled"), coord_readout=True
    )
    assert model.encode(torch.randn(1, 3, 32, 32)).coords.shape == (4, 2)


def test_the_q_former_is_the_resampler_mapper_read_as_a_memory():
    """One implementation: with the same weights, the Q-Former's memory is the resampler's prefix."""
    torch.manual_seed(0)
    shape = {"in_dim": 8, "d_model": 16, "num_tokens": 16, "num_layers": 1, "num_heads": 2}
    qformer = QFormerFusion(num_queries=4, **shape)
    resampler = PrefixFusion(prefix_len=4, mapper="resampler", **shape)
    resampler.load_state_dict(qformer.state_dict())  # strict: the same parameters
    tokens = torch.randn(2, 16, 8)
    with torch.no_grad():
        out, prefix = qformer(tokens), resampler(tokens)
    assert out.prefix is None and torch.equal(out.memory, prefix.prefix)


@pytest.mark.parametrize("recipe", sorted(SAVED))
def test_configs_saved_before_the_split_build_a_model_their_weights_fit(recipe):
    """Checkpoints keep their model config; one saved when the core decoder took the research flags builds, and has
    exactly the parameter names and shapes the weights were saved with (strict loading succeeds)."""
    saved = SAVED[recipe]
    model = build_captioner(copy.deepcopy(saved["model_config"]), 40)
    weights = {k: list(v.shape) for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    assert weights == saved["weights"]
    research = any(saved["model_config"]["decoder"].get(k) for k in ("prefix_experts", "token_mix", "coord_readout"))
    assert isinstance(model.decoder, ResearchDecoder) is research


def test_a_model_saved_with_the_removed_qk_norm_is_one_line():
    config = copy.deepcopy(SAVED["shapes_demo"]["model_config"])
    config["decoder"]["qk_norm"] = True
    with pytest.raises(UserError, match="decoder.qk_norm=true: QK-norm was removed"):
        build_captioner(config, 40)
