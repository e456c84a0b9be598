"""The core decoder with the research options: prefix experts, a token mixer and a position readout.

``experiment=shapes_concat`` selects it with ``decoder._target_``; the core :mod:`mmtrain.models.decoder` knows
nothing of it. Parameter names are those the options had inside the core decoder, so checkpoints trained with them
load unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmtrain.errors import UserError
from mmtrain.models.attention import Attention
from mmtrain.models.decoder import Block, KVCache, TransformerDecoder
from mmtrain.models.fusion.base import FusionOutput
from mmtrain.models.research.spatial import PositionAttention, PrefixKeys, TokenMix


class ResearchBlock(Block):
    """A core block, optionally with its own weights for the prefix, a token mixer, and a position readout.

    Args:
        prefix_expert: the prefix runs through a second block of the same shape without cross-attention (a modality
            expert, as in VLMo and CogVLM); in the ``last`` block only its norm and key/value projection.
        last: this is the decoder's last block, whose prefix output nothing reads.
        coord_readout: every attention is a :class:`PositionAttention`.
        token_mix: kernel of a :class:`TokenMix` over the text at the block's input; 0: none.
    """

    def __init__(
        self,
        *,
        d_model: int,
        num_heads: int,
        mlp_ratio: float,
        dropout: float,
        cross_attention: bool,
        prefix_expert: bool,
        last: bool,
        coord_readout: bool,
        token_mix: int,
    ) -> None:
        attention = PositionAttention if coord_readout else Attention
        shape = {"d_model": d_model, "num_heads": num_heads, "mlp_ratio": mlp_ratio, "dropout": dropout}
        super().__init__(**shape, cross_attention=cross_attention, attention=attention)
        self.coord_readout = coord_readout
        self.mix = TokenMix(d_model, token_mix) if token_mix else None
        self.prefix_expert: nn.Module | None = None
        if prefix_expert and last:
            self.prefix_expert = PrefixKeys(d_model, num_heads, coord_readout)
        elif prefix_expert:
            self.prefix_expert = Block(**shape, cross_attention=False, attention=attention)

    def norm_text(self, x: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        """The normalised text (N, T, D) through the token mixer, continuing from the inputs ``cache`` holds."""
        h = self.norm1(x)
        if self.mix is None:
            return h
        name = f"mix.{layer}"
        h, past = self.mix(h, None if cache is None else cache.rows.get(name))
        if cache is not None:
            cache.rows[name] = past  # (N, kernel-1, D), reordered with beams
        return h

    def prefix_keys_values(self, prefix: Tensor, image: FusionOutput) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
        """As :meth:`Block.prefix_keys_values`, through the expert's weights when there is one."""
        expert = self if self.prefix_expert is None else self.prefix_expert
        hp, attn = expert.norm1(prefix), expert.self_attn
        kp, vp = attn.keys_values(hp, image.coords) if self.coord_readout else attn.keys_values(hp)  # (B, H, P, dh)
        return expert, hp, kp, vp


class ResearchDecoder(TransformerDecoder):
    """:class:`TransformerDecoder` with the research options; the other arguments are the core decoder's.

    Args:
        prefix_experts: give the prefix (prefix or early fusion's image embeddings) its own norms, attention and MLP
            in every block, while the text keeps the LM's. Text still attends to the prefix.
        token_mix: kernel of a causal depthwise convolution over the text at every block's input (2 or more); 0: off.
        coord_readout: every attention also reads the image position of what it attends to; positions come from the
            fusion (``FusionOutput.coords``).
    """

    def __init__(
        self, *, prefix_experts: bool = False, token_mix: int = 0, coord_readout: bool = False, **core
    ) -> None:
        if token_mix < 0 or token_mix == 1:
            raise UserError(f"decoder.token_mix must be 0 (off) or a kernel of 2 or more, got {token_mix}")
        # plain values, set before the core constructor calls block() for each layer
        self.prefix_experts, self.token_mix, self.coord_readout = bool(prefix_experts), int(token_mix), coord_readout
        super().__init__(**core)

    def block(self, index: int, num_layers: int, cross_attention: bool, **shape) -> Block:
        return ResearchBlock(
            **shape,
            cross_attention=cross_attention,
            prefix_expert=self.prefix_experts,
            last=index == num_layers - 1,
            coord_readout=self.coord_readout,
            token_mix=self.token_mix,
        )

    def check_fusion(self, fusion: nn.Module) -> None:
        if self.prefix_experts and fusion.uses_cross_attention:
            raise UserError(
                "decoder.prefix_experts=true needs a prefix to apply to, and this fusion gives a cross-attention "
                "memory: use fusion=prefix or fusion=concat"
            )
        if self.coord_readout and getattr(fusion, "coords", None) is None:
            raise UserError(
                "decoder.coord_readout=true reads where each image token lies, and this fusion gives no positions "
                "(fusion=qformer, or fusion=prefix without fusion.queries=pooled): use fusion=cross_attention, "
                "fusion=concat, or fusion.queries=pooled"
            )

    def cross_kv(self, image: FusionOutput | None) -> list[tuple[Tensor, Tensor] | None]:
        if not self.coord_readout or image is None or image.memory is None or not self.cross_attention:
            return super().cross_kv(image)
        return [layer.cross_attn.keys_values(image.memory, image.coords) for layer in self.layers]
