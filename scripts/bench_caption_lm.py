"""The language-model part of ``scripts/bench_caption.py``: mmtrain's decoding of ``decoder=hf_causal_lm`` against
Hugging Face ``generate()`` on the same model.

One captioner (a timm ViT, a ClipCap-style prefix fusion, and a random-init GPT-2 saved with ``save_pretrained`` and
loaded through ``from_pretrained`` as users load one) serves both sides. Ours is ``mmtrain.models.generation.generate``;
the peer encodes the images with the same encoder and fusion, then calls the LM's ``generate(inputs_embeds=...)`` on
the prefix embeddings followed by the embedding of bos, as ``HFCausalLMDecoder`` builds them. Eos is blocked on both
sides (``block_eos``; ``min_new_tokens``), so both decode exactly the same number of steps, and greedy and beam search
(no length penalty effect at equal lengths) give the same token ids.
"""

from __future__ import annotations

import functools
import random
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from mmtrain.models.captioner import Captioner
from mmtrain.models.encoders import TimmEncoder
from mmtrain.models.fusion.prefix import PrefixFusion
from mmtrain.models.generation import DecodingConfig, generate, start_ids


def synthetic_captions(n: int, words: int = 6000, seed: int = 0) -> list[str]:
    """``n`` captions of random made-up words, so that a BPE tokenizer trained on them reaches a realistic size."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    lexicon = ["".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(words)]
    return [" ".join(rng.choices(lexicon, k=rng.randint(6, 14))) for _ in range(n)]


def write_lm(folder: Path, *, vocab: int, width: int, layers: int, heads: int, captions: int = 20000) -> Path:
    """A random-init GPT-2 and its BPE tokenizer, trained on ``captions`` synthetic captions, in ``folder``
    (``save_pretrained``), as ``make_tiny_lm.py`` writes them."""
    from mmtrain.models.tiny_lm import write_tiny_lm

    return write_tiny_lm(
        synthetic_captions(captions),
        folder,
        vocab_size=vocab,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        n_positions=128,
        dropout=0.0,
    )


def build_captioner(
    folder: Path, *, image_size: int, patch: int, d_model: int, layers: int, heads: int, prefix_len: int
) -> Captioner:
    """A ViT (``d_model`` wide, ``layers`` deep), a one-layer transformer mapper to ``prefix_len`` prefix embeddings,
    and the LM at ``folder`` as ``decoder=hf_causal_lm`` loads it, with its tokenizer's ids."""
    from mmtrain.models.hf_decoder import HFCausalLMDecoder
    from mmtrain.tokens import HFTokenizer, TextIds

    tokenizer = HFTokenizer(folder)
    encoder = TimmEncoder(
        model_name="vit_tiny_patch16_224",
        img_size=image_size,
        model_kwargs={"patch_size": patch, "depth": layers, "embed_dim": d_model, "num_heads": heads},
    )
    captioner = Captioner(
        encoder=encoder,
        fusion=functools.partial(PrefixFusion, prefix_len=prefix_len, mapper="transformer", num_layers=1),
        decoder=functools.partial(HFCausalLMDecoder, name_or_path=str(folder)),
        vocab_size=tokenizer.vocab_size,
    )
    captioner.ids = TextIds.of(tokenizer)
    return captioner.eval()


def hf_generate(captioner: Captioner, images: Tensor, config: DecodingConfig) -> Tensor:
    """The peer: our encoder and fusion, then the LM's own ``generate`` on [prefix; bos] embeddings: ids (B, T).

    ``config.max_len`` new tokens exactly (eos blocked with ``min_new_tokens``), greedy or beam search without
    sampling, one sequence per image.
    """
    lm, ids = captioner.decoder.lm, captioner.ids
    prefix = captioner.encode(images).prefix  # (B, P, D)
    start = lm.get_input_embeddings()(start_ids(captioner, len(images), prefix.device))  # (B, 1, D)
    embeds = torch.cat([prefix, start], dim=1)  # (B, P+1, D)
    return lm.generate(
        inputs_embeds=embeds,
        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
        max_new_tokens=config.max_len,
        min_new_tokens=config.max_len,
        num_beams=config.num_beams if config.strategy == "beam" else 1,
        length_penalty=config.length_penalty,
        do_sample=False,
        eos_token_id=ids.eos,
        pad_token_id=ids.pad,
    )  # (B, T): only the new tokens when the input is embeddings


def ours_generate(captioner: Captioner, images: Tensor, config: DecodingConfig) -> list[list[int]]:
    """Our decoding of ``images``: the best sequence's ids per image."""
    return [seqs[0] for seqs in generate(captioner, images, config)]


def round_times(runs: dict[str, Callable[[], object]], rounds: int, clock: Callable[[], float]) -> dict[str, list]:
    """Seconds of ``rounds`` calls of each function after one warm-up, per round; the sides run back to back within
    each round, and which side goes first alternates from round to round."""
    for fn in runs.values():
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            start = clock()
            runs[name]()
            seconds[name].append(clock() - start)
    return seconds


def quartiles(values: list[float]) -> tuple[float, float, float]:
    low, mid, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, mid, high


def versus_generate(
    captioner: Captioner, images: Tensor, config: DecodingConfig, rounds: int, clock: Callable[[], float]
) -> dict:
    """Whole pipeline (pixels to ids) of ours and ``generate()``, same images and settings: seconds and equality."""
    with torch.inference_mode():
        ours = ours_generate(captioner, images, config)
        peer = hf_generate(captioner, images, config).tolist()
        assert all(len(seq) == config.max_len for seq in ours + peer), "a side did not decode every step"
        times = round_times(
            {
                "ours": lambda: generate(captioner, images, config),
                "hf": lambda: hf_generate(captioner, images, config),
            },
            rounds,
            clock,
        )
    # Each round's ratio compares two calls made back to back, so a slow spell of the machine touches both sides
    ratios = [hf / ours for ours, hf in zip(times["ours"], times["hf"], strict=True)]
    low, mid, high = quartiles(ratios)
    return {
        "ours_s": round(statistics.median(times["ours"]), 4),
        "hf_generate_s": round(statistics.median(times["hf"]), 4),
        "speedup": round(mid, 2),
        "speedup_quartiles": [round(low, 3), round(high, 3)],
        "same_tokens": ours == peer,
    }


def lm_benchmark(args, images: Tensor, configs: dict[str, DecodingConfig], clock: Callable[[], float]) -> dict:
    """Build the LM in a temporary folder, the captioner on it, and time each decoding config against generate()."""
    import transformers

    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        folder = write_lm(
            Path(tmp) / "lm", vocab=args.lm_vocab, width=args.lm_width, layers=args.lm_layers, heads=args.lm_heads
        )
        torch.manual_seed(0)
        captioner = build_captioner(
            folder,
            image_size=args.image_size,
            patch=args.patch,
            d_model=args.d_model,
            layers=args.layers,
            heads=args.heads,
            prefix_len=args.prefix_len,
        )
    lm = captioner.decoder.lm
    setup = {
        "lm": f"GPT-2, {lm.config.n_layer} layers, {lm.config.n_embd} wide, {lm.config.n_head} heads",
        "lm_vocab": lm.config.vocab_size,
        "lm_parameters": sum(p.numel() for p in lm.parameters()),
        "prefix_len": args.prefix_len,
        "attn_implementation": lm.config._attn_implementation,
        "timing": f"{args.lm_rounds} rounds after a warm-up, sides back to back and alternating first, {args.clock} clock; speedup: the median of the rounds' ratios",
        "transformers": transformers.__version__,
    }
    return {
        "setup": setup,
        **{name: versus_generate(captioner, images, config, args.lm_rounds, clock) for name, config in configs.items()},
    }
