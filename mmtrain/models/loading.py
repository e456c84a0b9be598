"""Load a trained model from a Lightning checkpoint or an exported bundle, without unpickling arbitrary objects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mmtrain.errors import UserError
from mmtrain.models.captioner import Captioner
from mmtrain.models.generation import DecodingConfig
from mmtrain.tokens import HFTokenizer, TextIds, Tokenizer, load_tokenizer


@dataclass
class LoadedModel:
    """A captioner ready for inference, with what it needs to turn pixels into text."""

    captioner: Captioner
    tokenizer: Tokenizer | HFTokenizer
    decoding: DecodingConfig
    model_config: dict
    extra: dict  # store path, metrics, ... as saved

    @property
    def device(self) -> torch.device:
        return next(self.captioner.parameters()).device

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the captioner to ``device`` ("auto", "cpu", "cuda", "cuda:1"; see ``resolve_device``)."""
        self.captioner.to(resolve_device(device))
        return self

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, 3, H, W) on any device -> the encoder's normalised input on the model's device."""
        return self.captioner.normalize(images.to(self.device, non_blocking=True))

    @torch.no_grad()
    def caption(self, images: torch.Tensor, decoding: DecodingConfig | None = None) -> list[list[str]]:
        """Captions for uint8 images (B, 3, H, W), on any device: ``num_return_sequences`` strings per image."""
        sequences = self.captioner.generate(self.pixels(images), config=decoding or self.decoding)
        return [[self.tokenizer.decode(seq) for seq in seqs] for seqs in sequences]

    @torch.no_grad()
    def caption_prompted(
        self, images: torch.Tensor, prompts: list[list[str]], decoding: DecodingConfig | None = None
    ) -> list[list[list[str]]]:
        """Captions for uint8 images (B, 3, H, W), once per prompt (text) of each image, each continuing its prompt:
        ``num_return_sequences`` strings per image per prompt."""
        from mmtrain.models.generation import generate_prompted

        if self.captioner.ids.prompt:
            raise UserError(
                f"this model was trained with the fixed prompt {self.extra.get('prompt')!r}, so it cannot take "
                "per-sample prompts (from a store's prompt column or an input list)"
            )
        ids = [[tuple(self.tokenizer.tokens(p)) if p else () for p in own] for own in prompts]
        sequences = generate_prompted(self.captioner, self.pixels(images), ids, decoding or self.decoding)
        return [[[self.tokenizer.decode(seq) for seq in seqs] for seqs in per_prompt] for per_prompt in sequences]


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` is the current CUDA GPU when one is visible, else the CPU; a CUDA device that is not there is a
    ``UserError`` (rather than torch's assertion deep inside the first copy)."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={device}: not a device name (use auto, cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"device={device}: no CUDA device is visible to torch (use device=cpu or device=auto)")
        if resolved.index is not None and resolved.index >= count:
            raise UserError(f"device={device}: only {count} CUDA device(s) are visible (cuda:0..cuda:{count - 1})")
    elif resolved.type != "cpu":
        raise UserError(f"device={device}: only auto, cpu, cuda and cuda:N are supported")
    return resolved


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path`` as plain data (no unpickled code); a broken or foreign file is one ``UserError``."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        detail = (str(err).splitlines() or [""])[0][:120]
        raise UserError(f"{path}: not a readable checkpoint ({type(err).__name__}: {detail})") from None
    if not isinstance(checkpoint, dict) or not checkpoint.get("mmtrain") or "state_dict" not in checkpoint:
        raise UserError(f"{path}: not an mmtrain checkpoint (no 'mmtrain' section)")
    return checkpoint


def _from_checkpoint(path: Path) -> LoadedModel:
    from mmtrain.models.build import build_captioner

    checkpoint = read_checkpoint(path)
    meta = checkpoint["mmtrain"]
    tokenizer = load_tokenizer(bytes(meta["tokenizer"].numpy().tobytes()))
    captioner = build_captioner(meta["model_config"], tokenizer.vocab_size, for_inference=True)
    captioner.ids = TextIds.of(tokenizer, meta.get("extra", {}).get("prompt"))
    state, weights = checkpoint_weights(checkpoint["state_dict"])
    _load_state(captioner, state, path)
    decoding = DecodingConfig(**{k: v for k, v in meta.get("decoding", {}).items() if k != "_target_"})
    extra = {**meta.get("extra", {}), "weights": weights}
    return LoadedModel(captioner.eval(), tokenizer, decoding, meta["model_config"], extra)


def checkpoint_weights(state_dict: dict) -> tuple[dict, str]:
    """The captioner's weights in a Lightning ``state_dict``: the EMA of them when the run kept one ("ema"), else
    the trained weights ("raw")."""
    for prefix, weights in (("ema.model.", "ema"), ("captioner.", "raw")):
        state = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if state:
            return state, weights
    return {}, "raw"


def _from_bundle(path: Path) -> LoadedModel:
    from safetensors.torch import load_file

    from mmtrain.models.build import build_captioner

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(path / "tokenizer.model")
    model_config = bundled_lm(config["model"], path)
    captioner = build_captioner(model_config, tokenizer.vocab_size, for_inference=True)
    captioner.ids = TextIds.of(tokenizer, config.get("extra", {}).get("prompt"))
    _load_state(captioner, load_file(str(path / "model.safetensors")), path)
    decoding = DecodingConfig(**config.get("decoding", {}))
    return LoadedModel(captioner.eval(), tokenizer, decoding, config["model"], config.get("extra", {}))


def bundled_lm(model_config: dict, path: Path) -> dict:
    """``model_config`` with a bundle's own LM folder (``lm``, relative in the bundle) made a path that loads."""
    decoder = model_config["decoder"]
    if decoder.get("name_or_path") != "lm" or not (path / "lm").is_dir():
        return model_config
    return {**model_config, "decoder": {**decoder, "name_or_path": str(path / "lm")}}


def _load_state(captioner: Captioner, state: dict, path: Path) -> None:
    check_weights_fit(captioner, state, path)
    captioner.load_state_dict(state)


def check_weights_fit(model: torch.nn.Module, state: dict, source: object, *, allow_missing: bool = False) -> None:
    """Refuse, in one line naming ``source``, weights ``state`` that do not fit ``model``: names it lacks or does not
    know, or tensors of another shape (another config or tokenizer). The one check for loading, init_from and resume.

    ``allow_missing`` accepts parameters the weights do not have (a run that adds a head to a trained model).
    """
    wanted = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    stored = {name: tuple(tensor.shape) for name, tensor in state.items()}
    missing = [] if allow_missing else sorted(wanted.keys() - stored.keys())
    unexpected = sorted(stored.keys() - wanted.keys())
    resized = [
        f"{name} {stored[name]} != {shape}" for name, shape in wanted.items() if stored.get(name, shape) != shape
    ]
    problems = [
        f"{len(items)} {label}, e.g. {items[:2]}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", resized))
        if items
    ]
    if problems:
        raise UserError(f"{source}: weights do not fit the model built from this config ({'; '.join(problems)})")


def load_model(path: str | Path) -> LoadedModel:
    """Load a Lightning checkpoint (``.ckpt``) or an exported bundle folder."""
    path = Path(path)
    if path.is_dir() and (path / "model.safetensors").is_file():
        return _from_bundle(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file or bundle folder")
    return _from_checkpoint(path)
