"""Portable model bundles: safetensors weights, a JSON config, the tokenizer and a README card.

A bundle loads with ``mmtrain.models.loading.load_model`` and never needs pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmtrain.io import write_bytes, write_json, write_text


def _trained_on(extra: dict) -> str:
    """The dataset the store was made from: name, image root, and each split's checksum (from the store manifest)."""
    dataset = extra.get("dataset") or {}
    text = str(dataset.get("name") or extra.get("data", "unknown"))
    if dataset.get("root"):
        text += f" (images under `{dataset['root']}`)"
    if dataset.get("store"):
        text += f", store `{dataset['store']}`"
    images = dataset.get("images") or {}
    sums = {split: value for split, value in (dataset.get("checksums") or {}).items() if value and images.get(split)}
    if sums:
        text += "; checksums " + ", ".join(f"{split} `{value[:12]}`" for split, value in sums.items())
    return text


def _decoder_line(decoder: dict) -> str:
    if "name_or_path" in decoder:
        return "the language model whose config and tokenizer files are in `lm/` (LoRA adapters merged)"
    return f"{decoder.get('num_layers')} layers, width {decoder.get('d_model')}"


def _card(model_config: dict, metrics: dict | None, extra: dict) -> str:
    lines = [
        "# mmtrain captioning model",
        "",
        f"- encoder: `{model_config['encoder'].get('model_name')}`",
        f"- fusion: `{model_config['fusion'].get('_target_', '').rsplit('.', 1)[-1]}`",
        f"- decoder: {_decoder_line(model_config['decoder'])}",
        f"- trained on: {_trained_on(extra)}",
        f"- weights: {'an exponential moving average' if extra.get('weights') == 'ema' else 'as trained'}",
        "",
        "## Use",
        "",
        "```",
        "mmtrain caption ckpt=THIS_FOLDER inputs=[photo.jpg]",
        "```",
        "",
        "## Evaluation",
        "",
    ]
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, float)]
    else:
        lines.append("No evaluation was attached (export with metrics=PATH/metrics.json).")
    return "\n".join(lines) + "\n"


def write_bundle(out: Path, loaded, metrics: dict | None) -> Path:
    """Write ``loaded`` (a LoadedModel) as a bundle folder ``out``."""
    from safetensors.torch import save

    state, model_config = loaded.captioner.state_dict(), loaded.model_config
    decoder = loaded.captioner.decoder
    if hasattr(decoder, "merged_state_dict"):  # a Hugging Face LM: its config and tokenizer files, LoRA merged
        from mmtrain.models.hf_decoder import bundle_config, save_lm_files

        state = {k: v for k, v in state.items() if not k.startswith("decoder.")}
        state.update({f"decoder.{k}": v for k, v in decoder.merged_state_dict().items()})
        save_lm_files(decoder, loaded.tokenizer, out / "lm")
        model_config = bundle_config(model_config)
    state = {k: v.contiguous().clone() for k, v in state.items()}  # tied weights (an LM's head) saved apart
    write_bytes(out / "model.safetensors", save(state))
    write_bytes(out / "tokenizer.model", loaded.tokenizer.model_bytes)
    config = {"model": model_config, "decoding": dict(loaded.decoding.__dict__), "extra": loaded.extra}
    write_json(out / "config.json", config)
    write_text(out / "README.md", _card(model_config, metrics, loaded.extra))
    return out


def read_metrics(path: str | Path | None) -> dict | None:
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else None
