"""Modules for spatial relations ("left of") on the shapes set: a causal token mixer and a position readout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtrain.models.attention import Attention


class TokenMix(nn.Module):
    """A causal depthwise convolution over the text positions, added to a block's normalised input.

    Each position then carries the few tokens before it, so the query of a function word ("is", "the") already holds
    the content words just written and can look them up in the image in the same block (Primer's depthwise
    convolutions; the "canon layers" of Physics of Language Models, part 4.1).
    """

    def __init__(self, d_model: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.randn(d_model, 1, kernel) * 0.1)

    def forward(self, h: Tensor, past: Tensor | None) -> tuple[Tensor, Tensor]:
        """Mixed ``h`` (N, T, D) given the ``past`` (N, kernel-1, D) inputs before it; also the new past."""
        n, _, d = h.shape
        if past is None:
            past = h.new_zeros(n, self.kernel - 1, d)
        x = torch.cat([past, h], dim=1)  # (N, kernel-1+T, D)
        y = F.conv1d(x.transpose(1, 2), self.weight.to(h.dtype), groups=d).transpose(1, 2)  # (N, T, D)
        return h + y, x[:, x.shape[1] - (self.kernel - 1) :]


def with_coords(v: Tensor, coords: Tensor | None) -> Tensor:
    """Values (N, H, T, dh) with each token's image position (T, 2) appended: (N, H, T, dh+2); zeros without one."""
    n, h, t, _ = v.shape
    c = v.new_zeros(n, h, t, 2) if coords is None else coords.to(v.dtype).expand(n, h, t, 2)
    return torch.cat([v, c], dim=-1)


class PositionAttention(Attention):
    """Attention whose values also carry each token's image position (x, y), zero for text tokens.

    Each head then returns where in the image it looked (the attention-weighted mean position, a soft-argmax), and
    a linear layer adds those 2 x heads numbers to the output: "left of" needs only attention to the right shape.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float) -> None:
        super().__init__(d_model, num_heads, dropout)
        self.coord_out = nn.Linear(2 * num_heads, d_model)

    def keys_values(self, x: Tensor, coords: Tensor | None = None) -> tuple[Tensor, Tensor]:
        k, v = super().keys_values(x)
        return k, with_coords(v, coords)  # (N, H, T, dh), (N, H, T, dh+2)

    def project(self, y: Tensor) -> Tensor:
        """(N, T, H, dh+2) -> (N, T, D); the last two channels of each head are where it looked."""
        n, t = y.shape[:2]
        return self.out(y[..., :-2].reshape(n, t, -1)) + self.coord_out(y[..., -2:].reshape(n, t, -1))


class PrefixKeys(nn.Module):
    """The prefix expert of the last block: only a norm and the key/value projection, as nothing reads its output.

    Args:
        coord_readout: values carry the prefix tokens' positions, as :class:`PositionAttention` reads them.
    """

    def __init__(self, d_model: int, num_heads: int, coord_readout: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = KeyValues(d_model, num_heads, coord_readout)


class KeyValues(nn.Module):
    """The key/value half of an attention, for tokens that are attended to but never attend."""

    def __init__(self, d_model: int, num_heads: int, coord_readout: bool) -> None:
        super().__init__()
        self.num_heads, self.coord_readout = num_heads, coord_readout
        self.kv = nn.Linear(d_model, 2 * d_model)

    def keys_values(self, x: Tensor, coords: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, t, d = x.shape
        k, v = (z.view(n, t, self.num_heads, -1).transpose(1, 2) for z in self.kv(x).chunk(2, dim=-1))
        return k, (with_coords(v, coords) if self.coord_readout else v)  # (N, H, T, dh[+2])
