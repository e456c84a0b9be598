"""Decoding strategies over one incremental step function: greedy, beam search and sampling.

All of them run batched on the decoder's KV cache. The image is encoded once; sequences that share an image
(beams, samples) share its cross-attention keys/values (see ``KVCache.group``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmtrain.tokens import TextIds


@dataclass(frozen=True)
class DecodingConfig:
    """How to decode. The same presets serve validation, eval, SCST and caption.

    Attributes:
        strategy: ``greedy``, ``beam`` or ``sample``.
        max_len: most new tokens, eos included.
        min_len: fewest new tokens before eos is allowed.
        num_beams: beam width (beam).
        length_penalty: beam scores are divided by ``length ** length_penalty``.
        no_repeat_ngram_size: forbid repeating any n-gram of this size (0 disables).
        temperature: softmax temperature (sample).
        top_k: keep the k most likely tokens (sample; 0 disables).
        top_p: nucleus mass (sample; 1.0 disables).
        num_return_sequences: sequences returned per image.
        seed: sampling seed (None: nondeterministic).
        block_eos: never emit eos (benchmarks force a fixed number of steps with it).
    """

    strategy: str = "greedy"
    max_len: int = 30
    min_len: int = 1
    num_beams: int = 3
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_return_sequences: int = 1
    seed: int | None = 0
    block_eos: bool = False


def generate(model, images: Tensor, config: DecodingConfig | None = None, **overrides) -> list[list[list[int]]]:
    """Decode ``images`` (B, 3, H, W) with ``model`` (a Captioner); token ids per image per returned sequence."""
    config = config or DecodingConfig()
    if overrides:
        config = DecodingConfig(**{**config.__dict__, **overrides})
    if config.strategy not in _STRATEGIES:
        raise ValueError(f"decoding.strategy must be one of {sorted(_STRATEGIES)}, got {config.strategy!r}")
    return decode(model, model.encode(images), images.shape[0], config)


def decode(model, fused, n_images: int, config: DecodingConfig, prompt: tuple[int, ...] | None = None):
    """Decode from already fused images (``model.encode``); the part of :func:`generate` after the encoder.

    ``prompt``: the ids every sequence continues after bos, instead of the model's fixed prompt (``model.ids``).
    """
    return _STRATEGIES[config.strategy](model, fused, n_images, config, prompt)


def generate_prompted(
    model, images: Tensor, prompts: list[list[tuple[int, ...]]], config: DecodingConfig
) -> list[list[list[list[int]]]]:
    """Decode each image once per prompt in ``prompts`` (its own list of prompt ids): sequences per image per prompt.

    Images are encoded once; the (image, prompt) pairs that share a prompt are decoded together as one batch, so
    every row starts from the same (1+P) ids and no padding enters the prompt.
    """
    fused = model.encode(images)
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for row, own in enumerate(prompts):
        for index, prompt in enumerate(own):
            groups.setdefault(tuple(prompt), []).append((row, index))
    out: list[list] = [[None] * len(own) for own in prompts]
    device = next(model.parameters()).device
    for prompt, pairs in groups.items():
        rows = torch.tensor([row for row, _ in pairs], device=device)
        for (row, index), seqs in zip(
            pairs, decode(model, select_rows(fused, rows), len(pairs), config, prompt), strict=True
        ):
            out[row][index] = seqs
    return out


def select_rows(fused, rows: Tensor):
    """The fused inputs (a ``FusionOutput``) of images ``rows`` (N,), in that order; an image may repeat."""
    memory = None if fused.memory is None else fused.memory.index_select(0, rows)  # (N, M, D)
    prefix = None if fused.prefix is None else fused.prefix.index_select(0, rows)  # (N, P, D)
    return fused._replace(memory=memory, prefix=prefix)


def text_ids(model) -> TextIds:
    """The captioner's bos, eos and prompt ids (a model without them uses SentencePiece's fixed ids)."""
    return getattr(model, "ids", None) or TextIds()


def start_ids(model, n: int, device: torch.device, prompt: tuple[int, ...] | None = None) -> Tensor:
    """What every sequence starts from (N, 1+P): bos, then ``prompt`` (default: the model's fixed ``model.ids``)."""
    ids = text_ids(model)
    prompt = ids.prompt if prompt is None else prompt
    return torch.tensor([ids.bos, *prompt], dtype=torch.long, device=device).expand(n, -1)


def _constrain(logits: Tensor, step: int, history: Tensor | None, config: DecodingConfig, ids) -> Tensor:
    """Apply min length, eos blocking and no-repeat-ngram to next-token ``logits`` (N, V) in place."""
    if config.block_eos or step < config.min_len - 1:
        logits[:, ids.eos] = float("-inf")
    if ids.bos != ids.eos:  # GPT-2's bos is its eos
        logits[:, ids.bos] = float("-inf")
    n = config.no_repeat_ngram_size
    if n > 0 and history is not None and history.shape[1] >= n:
        for row, banned in enumerate(_banned_ngram_tokens(history.tolist(), n)):
            if banned:
                logits[row, list(banned)] = float("-inf")
    return logits


def _banned_ngram_tokens(histories: list[list[int]], n: int) -> list[set[int]]:
    """Tokens that would complete an n-gram already present in each history."""
    banned = []
    for tokens in histories:
        tail = tuple(tokens[len(tokens) - n + 1 :]) if n > 1 else ()
        seen = {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i : i + n - 1]) == tail}
        banned.append(seen)
    return banned


def _finish(tokens: Tensor, n_images: int, per_image: int, eos: int) -> list[list[list[int]]]:
    """Cut rows of ``tokens`` (N, T) at eos and group them per image."""
    out: list[list[list[int]]] = [[] for _ in range(n_images)]
    for row, seq in enumerate(tokens.tolist()):
        out[row // per_image].append(seq[: seq.index(eos)] if eos in seq else seq)
    return out


def _run_to_end(model, fused, n_images: int, config: DecodingConfig, pick, prompt=None) -> list[list[list[int]]]:
    """Shared loop of greedy and sampling: ``pick`` maps constrained logits (N, V) to next tokens (N,)."""
    group = config.num_return_sequences
    n = n_images * group
    device = next(model.parameters()).device
    ids = text_ids(model)
    logits, cache = model.start(fused, start_ids(model, n, device, prompt), group)
    tokens = torch.empty(n, 0, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for step in range(config.max_len):
        next_token = pick(_constrain(logits.float(), step, tokens, config, ids))  # (N,)
        next_token = torch.where(done, torch.full_like(next_token, ids.eos), next_token)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        done |= next_token == ids.eos
        if bool(done.all()) or step == config.max_len - 1:
            break
        logits = model.decoder.step(next_token[:, None], cache)
    return _finish(tokens, n_images, group, ids.eos)


def _greedy(model, fused, n_images: int, config: DecodingConfig, prompt=None) -> list[list[list[int]]]:
    return _run_to_end(model, fused, n_images, config, lambda logits: logits.argmax(dim=-1), prompt)


def _sample(model, fused, n_images: int, config: DecodingConfig, prompt=None) -> list[list[list[int]]]:
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if config.seed is not None:
        generator.manual_seed(config.seed)
    else:
        generator.seed()

    def pick(logits: Tensor) -> Tensor:
        probs = torch.softmax(filter_logits(logits, config), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    return _run_to_end(model, fused, n_images, config, pick, prompt)


def filter_logits(logits: Tensor, config: DecodingConfig) -> Tensor:
    """Temperature, top-k and top-p filtering of logits (N, V)."""
    logits = logits / max(config.temperature, 1e-6)
    if config.top_k > 0:
        kth = torch.topk(logits, min(config.top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        remove = cumulative - torch.softmax(sorted_logits, dim=-1) > config.top_p  # keep the token crossing top_p
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    return logits


def _beam(model, fused, n_images: int, config: DecodingConfig, prompt=None) -> list[list[list[int]]]:
    from mmtrain.models.beam import beam_search

    return beam_search(model, fused, n_images, config, prompt)


def sample_with_logprobs(model, fused, n_images: int, k: int, max_len: int, temperature: float = 1.0):
    """Sample ``k`` captions per image on the KV cache, keeping the graph for policy gradients (SCST).

    Returns:
        tokens (N, T) with eos after the end, token log-probabilities (N, T) with grad, and a mask (N, T) of the
        positions that count (up to and including the first eos).
    """
    n = n_images * k
    device = fused.memory.device if fused.memory is not None else fused.prefix.device
    ids = text_ids(model)
    logits, cache = model.start(fused, start_ids(model, n, device), k)
    tokens, logprobs, masks = [], [], []
    alive = torch.ones(n, dtype=torch.bool, device=device)
    for step in range(max_len):
        scaled = logits.float() / temperature
        if ids.bos != ids.eos:
            scaled = scaled.index_fill(1, torch.tensor([ids.bos], device=device), float("-inf"))
        logp = torch.log_softmax(scaled, dim=-1)  # (N, V)
        next_token = torch.multinomial(logp.detach().exp(), 1).squeeze(1)  # (N,)
        next_token = torch.where(alive, next_token, torch.full_like(next_token, ids.eos))
        tokens.append(next_token)
        logprobs.append(logp.gather(1, next_token[:, None]).squeeze(1))
        masks.append(alive.clone())
        alive &= next_token != ids.eos
        if not bool(alive.any()) or step == max_len - 1:
            break
        logits = model.decoder.step(next_token[:, None], cache)
    return torch.stack(tokens, 1), torch.stack(logprobs, 1), torch.stack(masks, 1)


_STRATEGIES = {"greedy": _greedy, "beam": _beam, "sample": _sample}
