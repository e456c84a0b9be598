"""Estimate the GPU hours of the pretrained-LM recipes from their counted FLOPs; prints JSON.

For each recipe (``experiment=clipcap_gpt2_coco``, ``llava_style_coco``, ``llava_style_coco_lora``) the composed config
gives the image tower, the fusion, the batch and the number of steps. The model is built on PyTorch's ``meta`` device
(nothing is allocated or downloaded: the language models come from transformers' config classes with the published
sizes of GPT-2 and SmolLM2-135M), and ``torch.utils.flop_counter`` counts one training step: the fusion forward and
backward, the frozen LM's forward and its backward to the prefix (no weight gradients), logits over the caption
positions only. The frozen tower runs once per training image, to fill the feature cache (``preprocess
features=true``), and not in the steps. LoRA's rank-8 adapters add under 1% and are not counted; neither is
validation. Hours are the FLOPs over an assumed sustained rate (a fraction of the bf16 dense peak; small batches of a
small LM reach less, so read them as a lower bound).

Usage: python scripts/estimate_recipes.py [--caption-tokens 24] [--utilisation 0.4]
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date

import torch
from torch.utils.flop_counter import FlopCounterMode

RECIPES = ("clipcap_gpt2_coco", "llava_style_coco", "llava_style_coco_lora")
TRAIN_IMAGES = 113_287  # Karpathy train + restval
PEAK_BF16_TFLOPS = {"A100": 312.0, "H100 SXM": 989.0}  # dense, from the vendors' data sheets


def language_model(name: str) -> torch.nn.Module:
    """A randomly initialised LM of ``name``'s published shape, on the meta device."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if name == "gpt2":
        return GPT2LMHeadModel(GPT2Config())
    if name == "HuggingFaceTB/SmolLM2-135M":
        shape = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9}
        return LlamaForCausalLM(LlamaConfig(**shape, num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True))
    raise SystemExit(f"no published shape recorded for {name}")


def tower(cfg) -> torch.nn.Module:
    import timm

    model = timm.create_model(cfg.encoder.model_name, num_classes=0, global_pool="")
    if cfg.encoder.layer != -1:
        model.prune_intermediate_layers([cfg.encoder.layer], prune_norm=True)
    return model.requires_grad_(False)


def count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def estimate(recipe: str, caption_tokens: int) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from mmtrain.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=[f"experiment={recipe}", "decoder=small"])  # the image side and the schedule
    images, per_image = int(cfg.datamodule.batch_size), int(cfg.datamodule.captions_per_image)
    size = int(cfg.data.resize.size)
    with torch.device("meta"):
        encoder, lm = tower(cfg), language_model(cfg.decoder.name_or_path).requires_grad_(False)
        pixels = torch.empty(1, 3, size, size)
        tokens = encoder.forward_features(pixels)  # (1, N, C)
        fusion = instantiate(cfg.fusion)(
            in_dim=tokens.shape[-1], d_model=lm.config.hidden_size, num_tokens=tokens.shape[1]
        )
        ids = torch.zeros(images * per_image, caption_tokens, dtype=torch.long)

    def step() -> None:
        prefix = fusion(tokens.expand(images, -1, -1)).prefix.repeat_interleave(per_image, dim=0)  # (B*C, P, D)
        embeds = torch.cat([prefix, lm.get_input_embeddings()(ids)], dim=1)  # (B*C, P+T, D)
        hidden = lm.base_model(inputs_embeds=embeds).last_hidden_state[:, prefix.shape[1] - 1 : -1]  # (B*C, T, D)
        lm.get_output_embeddings()(hidden).float().sum().backward()

    step_flops = count(step)
    cache_flops = count(lambda: encoder.forward_features(pixels)) * TRAIN_IMAGES
    total = step_flops * int(cfg.trainer.max_steps) + cache_flops
    return {
        "captions_per_step": images * per_image,
        "steps": int(cfg.trainer.max_steps),
        "prefix_tokens": int(fusion(tokens).prefix.shape[1]),
        "trainable_fusion_params": sum(p.numel() for p in fusion.parameters()),
        "lm_params": sum(p.numel() for p in lm.parameters()),
        "tflop_per_step": round(step_flops / 1e12, 3),
        "feature_cache_pflop": round(cache_flops / 1e15, 2),
        "total_pflop": round(total / 1e15, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caption-tokens", type=int, default=24, help="caption length the batches are padded to")
    parser.add_argument("--utilisation", type=float, default=0.4, help="sustained fraction of the bf16 dense peak")
    args = parser.parse_args()
    report = {"date": date.today().isoformat(), "machine": platform.platform(), "torch": torch.__version__}
    report.update(caption_tokens=args.caption_tokens, utilisation=args.utilisation, recipes={})
    for recipe in RECIPES:
        row = estimate(recipe, args.caption_tokens)
        for gpu, peak in PEAK_BF16_TFLOPS.items():
            row[f"gpu_hours_{gpu}"] = round(row["total_pflop"] * 1e3 / (peak * args.utilisation) / 3600, 2)
        report["recipes"][recipe] = row
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
