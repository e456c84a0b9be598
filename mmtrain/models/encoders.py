"""Image encoders: any timm model by name, returning the tokens (B, N, D) of its last (or a chosen) layer."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmtrain.errors import UserError

log = logging.getLogger(__name__)


class TimmEncoder(nn.Module):
    """Wraps a timm model so that it maps images (B, 3, H, W) to tokens (B, N, D).

    ViT-style models give their patch (and prefix) tokens; CNNs give their final feature grid flattened row-major.
    The pixel normalisation (mean, std) is the model's own, from timm's pretrained config of ``model_name`` (CLIP's
    for ``vit_base_patch32_clip_224.openai``, 0.5 for SigLIP, ImageNet's for most others), with or without weights.

    Args:
        model_name: any name ``timm.create_model`` accepts, e.g. ``vit_base_patch16_224`` or ``resnet50``.
        pretrained: load timm's pretrained weights (from its hub; needs network or a warm cache).
        checkpoint: a local weights file (safetensors, or a torch file read with ``weights_only=True``).
        img_size: input resolution; ViT position embeddings are resized by timm. None: the model's pretrained input
            size (224 for ``vit_base_patch16_siglip_224``).
        freeze: ``"none"`` (train all), ``"all"``, or an int N to train only the last N blocks.
        model_kwargs: extra constructor arguments passed to timm (depth, embed_dim, output_stride, ...).
        channels_last: run a CNN in NHWC memory format (about 20% faster convolutions on CPU with oneDNN).
        layer: which block's tokens to return. -1: the model's final features, after its final norm (as before);
            -2: the penultimate block's output, before any final norm, as LLaVA reads CLIP; any index timm's
            ``forward_intermediates`` takes (blocks of a ViT, stages of a CNN). The blocks after it are removed, so
            they cost nothing and are not in the state dict.
    """

    def __init__(
        self,
        *,
        model_name: str,
        pretrained: bool = False,
        checkpoint: str | None = None,
        img_size: int | None = 224,
        freeze: str | int = "none",
        model_kwargs: dict[str, Any] | None = None,
        channels_last: bool = False,
        layer: int = -1,
    ) -> None:
        super().__init__()
        import timm

        kwargs = dict(model_kwargs or {})
        if checkpoint and not Path(checkpoint).is_file():
            raise UserError(f"{checkpoint}: encoder checkpoint not found")
        structure = _create(model_name, device="meta", **kwargs)
        img_size = _input_size(model_name, structure, img_size, warn=bool(pretrained or checkpoint))
        if "img_size" not in kwargs and fixed_input_size(structure):
            kwargs["img_size"] = img_size  # a ViT's patch grid (and position embeddings) is set at construction
        _warn_of_activation(model_name, structure)
        if checkpoint:
            kwargs["pretrained_cfg_overlay"] = {"file": str(checkpoint)}
        self.model = _create(model_name, pretrained=pretrained or bool(checkpoint), **kwargs)
        if layer != -1:
            _keep_up_to(self.model, model_name, layer)
        self.model_name, self.img_size, self.layer = model_name, img_size, layer
        self.model_kwargs = dict(model_kwargs or {})  # part of a feature cache's key
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Shape from a probe, not num_features: a timm ResNet with empty last stages reports its configured width,
        # not what its last non-empty stage gives. In eval mode so batch-norm statistics stay untouched.
        self.model.eval()
        with torch.no_grad():
            probe = self.forward(torch.zeros(1, 3, img_size, img_size))
        self.model.train()
        self.num_tokens: int = probe.shape[1]
        self.out_dim: int = probe.shape[2]
        self.data_config = timm.data.resolve_data_config({}, model=self.model)  # the pretrained config's mean, std
        mean, std = self.data_config["mean"], self.data_config["std"]
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)
        self.set_freeze(freeze)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 images (B, 3, H, W) -> this encoder's normalised float input (B, 3, H, W)."""
        return (images.float() - self.pixel_mean) / self.pixel_std

    def set_freeze(self, freeze: str | int) -> None:
        """Freeze everything, nothing, or all but the last N blocks (``blocks`` or ``stages`` in timm models)."""
        self.frozen_all = freeze == "all"
        if freeze in ("none", None, 0):
            return
        for p in self.model.parameters():
            p.requires_grad_(False)
        if freeze == "all":
            return
        blocks = getattr(self.model, "blocks", None) or getattr(self.model, "stages", None)
        if blocks is None:
            blocks = [m for name, m in self.model.named_children() if name.startswith("layer")]
        for block in list(blocks)[-int(freeze) :]:
            for p in block.parameters():
                p.requires_grad_(True)
        for name in ("norm", "fc_norm", "head_norm"):
            module = getattr(self.model, name, None)
            if isinstance(module, nn.Module):
                for p in module.parameters():
                    p.requires_grad_(True)

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def train(self, mode: bool = True) -> TimmEncoder:
        """A wholly frozen encoder stays in eval mode: batch-norm statistics and dropout stay fixed too, so it always
        computes what a feature cache of it holds."""
        super().train(mode)
        if getattr(self, "frozen_all", False):
            self.model.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.model.forward_features(images)
        if features.ndim == 4 and getattr(self.model, "output_fmt", "NCHW") == "NHWC":  # Swin, MambaOut: (B, H, W, C)
            return features.flatten(1, 2)  # (B, H*W, C)
        if features.ndim == 4:  # CNN grid (B, C, H, W)
            return features.flatten(2).transpose(1, 2)  # (B, H*W, C)
        return features  # (B, N, D)


def _create(model_name: str, *, device: str = "cpu", pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` without a classifier or pooling; an unknown name is a ``UserError``.

    On the ``meta`` device nothing is allocated or loaded: the model's structure alone, to look at.
    """
    import timm

    try:
        with torch.device(device):
            return timm.create_model(model_name, pretrained=pretrained, num_classes=0, global_pool="", **kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise UserError(f"encoder.model_name={model_name!r}: {err}") from None
        raise


def _input_size(model_name: str, structure: nn.Module, img_size: int | None, *, warn: bool) -> int:
    """``img_size``, or the model's pretrained input size when None; with ``warn``, say when a ViT's weights trained
    at one size are built for another (timm resamples the position embeddings: it works, a little off-distribution)."""
    import timm

    trained = int(timm.data.resolve_data_config({}, model=structure)["input_size"][-1])
    if img_size is None:
        return trained
    if warn and int(img_size) != trained and fixed_input_size(structure):
        log.warning(
            "%s was trained at %d px and is built for %d px: timm resamples its position embeddings",
            model_name,
            trained,
            img_size,
        )
    return int(img_size)


def _keep_up_to(model: nn.Module, model_name: str, layer: int) -> None:
    """Cut ``model`` after block (or stage) ``layer`` and drop its final norm, so ``forward_features`` returns that
    block's output: what timm's ``forward_intermediates(indices=[layer], norm=False)`` gives."""
    if not hasattr(model, "prune_intermediate_layers"):
        raise UserError(f"encoder.layer={layer}: timm's {model_name} cannot return an intermediate layer; use -1")
    try:
        model.prune_intermediate_layers([layer], prune_norm=True, prune_head=True)
    except AssertionError as err:  # timm asserts the index is in range
        raise UserError(f"encoder.layer={layer} for {model_name}: {err}") from None


def _warn_of_activation(model_name: str, model: nn.Module) -> None:
    """OpenAI's CLIP towers were trained with QuickGELU; timm's plain names build them with GELU, which shifts every
    feature a little. timm notes this in the pretrained config; say so, with the name to use instead."""
    notes = " ".join(getattr(model, "pretrained_cfg", {}).get("notes", ()) or ())
    if "quickgelu" in notes.lower() and "quickgelu" not in model_name:
        log.warning("%s: %s (e.g. %s)", model_name, notes, model_name.replace("_clip_", "_clip_quickgelu_", 1))


def fixed_input_size(model: nn.Module) -> bool:
    """Whether timm must be given ``img_size`` to build ``model`` for our input size; decided from the model, not
    from its name ("vit" is also in levit, mobilevit, fastvit and efficientvit).

    True for ViTs and their kin (DeiT, EVA, BEiT, Swin: a timm ``PatchEmbed`` built for one image size, with position
    embeddings or windows for its grid) and for other models whose constructor takes ``img_size`` (LeViT's attention
    biases, MLP-Mixer's token MLPs); False for CNNs and for models such as FastViT that read any size.
    """
    from timm.layers import PatchEmbed

    patch_embed = getattr(model, "patch_embed", None)
    if isinstance(patch_embed, PatchEmbed) and patch_embed.img_size is not None:
        return True
    for cls in type(model).__mro__:
        if cls is nn.Module:
            break
        if "img_size" in inspect.signature(cls.__init__).parameters:
            return True
    return False
