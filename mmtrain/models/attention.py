"""Multi-head attention over PyTorch's scaled_dot_product_attention, as the decoder's blocks use it."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention over SDPA, used as self- or cross-attention."""

    def __init__(self, d_model: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def split(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        return x.view(n, t, self.num_heads, d // self.num_heads).transpose(1, 2)  # (N, H, T, dh)

    def queries(self, x: Tensor) -> Tensor:
        return self.split(self.q(x))  # (N, H, T, dh)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)  # (N, H, T, dh) each

    def project(self, y: Tensor) -> Tensor:
        n, t = y.shape[:2]
        return self.out(y.reshape(n, t, -1))  # (N, T, H, dh) -> (N, T, D)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool = False) -> Tensor:
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)  # (N, H, T, dh)
        return self.project(y.transpose(1, 2))

    def cross(self, x: Tensor, kv: tuple[Tensor, Tensor], group: int) -> Tensor:
        """Cross-attend ``x`` (B*G, T, D) to per-image ``kv`` (B, H, M, dh) without copying the memory."""
        k, v = kv
        bg, t, _ = x.shape
        q = self.queries(x).view(bg // group, group, self.num_heads, t, -1).transpose(1, 2)  # (B, H, G, T, dh)
        q = q.reshape(bg // group, self.num_heads, group * t, -1)  # (B, H, G*T, dh)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        y = y.view(bg // group, self.num_heads, group, t, -1).permute(0, 2, 3, 1, 4)  # (B, G, T, H, dh)
        return self.project(y.reshape(bg, t, self.num_heads, -1))
