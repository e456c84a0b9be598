"""Fusion building blocks: token merging."""

from __future__ import annotations

import pytest
import torch

from mmtrain.errors import UserError
from mmtrain.models.fusion.base import TokenMerge
from mmtrain.models.fusion.concat import ConcatFusion
from mmtrain.models.fusion.prefix import PrefixFusion


def test_token_merge_keeps_every_feature_of_each_block():
    """A 4x4 grid merged by 2 gives 2x2 tokens; token (r, c) holds grid tokens (2r..2r+1, 2c..2c+1), row-major."""
    merge = TokenMerge(17, 3, 2)  # one leading class token, then a 4x4 grid
    x = torch.arange(17 * 3, dtype=torch.float32).view(1, 17, 3)
    y = merge(x)
    assert y.shape == (1, 4, 12) and (merge.num_tokens, merge.out_dim) == (4, 12)
    grid_index = y[0].view(4, 4, 3)[..., 0] / 3 - 1  # which grid token each slot came from
    assert grid_index.tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert torch.equal(torch.sort(y.flatten()).values, x[0, 1:].flatten())  # nothing lost, nothing repeated


def test_token_merge_of_one_is_the_identity():
    x = torch.randn(2, 10, 5)
    assert TokenMerge(10, 5, 1)(x) is x


@pytest.mark.parametrize(("tokens", "factor"), [(64, 3), (50, 2), (64, 0)])
def test_token_merge_rejects_grids_it_cannot_tile(tokens, factor):
    with pytest.raises(UserError, match="fusion.merge"):
        TokenMerge(tokens, 8, factor)


def test_merged_early_fusion_feeds_fewer_image_tokens_to_the_decoder():
    fusion = ConcatFusion(in_dim=8, d_model=16, num_tokens=64, merge=2)
    assert fusion(torch.randn(3, 64, 8)).prefix.shape == (3, 16, 16)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_transformer_mapper_equals_the_full_encoder_stack(num_layers):
    """The mapper updates only the queries in its last layer; the prefix is what the whole stack would give."""
    torch.manual_seed(0)
    fusion = PrefixFusion(in_dim=32, d_model=64, num_tokens=64, prefix_len=16, queries="pooled", num_layers=num_layers)
    tokens = torch.randn(3, 64, 32)
    with torch.no_grad():
        image = fusion.proj(tokens) + fusion.pos
        queries = fusion.queries.expand(3, -1, -1) + fusion._pool(image)
        full = fusion.norm(fusion.net(torch.cat([queries, image], dim=1))[:, :16])
        assert torch.allclose(fusion(tokens).prefix, full, atol=1e-5)
