"""Batched beam search on the KV cache, with length penalty, no-repeat-ngram and min/max length."""

from __future__ import annotations

import torch
from torch import Tensor

from mmtrain.models.decoder import KVCache


class _Hypotheses:
    """The best finished sequences of one image, scored with the length penalty."""

    def __init__(self, keep: int, length_penalty: float) -> None:
        self.keep, self.length_penalty = keep, length_penalty
        self.items: list[tuple[float, list[int]]] = []

    def add(self, tokens: list[int], logprob: float) -> None:
        self.items.append((logprob / (max(len(tokens), 1) ** self.length_penalty), tokens))
        self.items.sort(key=lambda item: -item[0])
        del self.items[self.keep :]

    def is_done(self, best_running: float, length: int) -> bool:
        """No running beam can beat the worst kept hypothesis any more (assuming scores only fall)."""
        if len(self.items) < self.keep:
            return False
        return best_running / (length**self.length_penalty) <= self.items[-1][0]


def beam_search(model, fused, n_images: int, config, prompt: tuple[int, ...] | None = None) -> list[list[list[int]]]:
    """Beam search for ``n_images`` images; returns ``num_return_sequences`` token lists per image.

    ``prompt``: the ids after bos that every beam continues (default: the model's fixed prompt).
    """
    from mmtrain.models.generation import _constrain, text_ids

    ids = text_ids(model)
    k = config.num_beams
    logits, cache = _start(model, fused, n_images, k, prompt)
    device = logits.device
    scores = torch.zeros(n_images, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand from the first only
    tokens = torch.empty(n_images * k, 0, dtype=torch.long, device=device)
    hyps = [_Hypotheses(max(k, config.num_return_sequences), config.length_penalty) for _ in range(n_images)]
    done = [False] * n_images
    for step in range(config.max_len):
        logp = torch.log_softmax(_constrain(logits.float(), step, tokens, config, ids), dim=-1)  # (B*K, V)
        vocab = logp.shape[-1]
        candidates = (scores.view(-1, 1) + logp).view(n_images, k * vocab)  # (B, K*V)
        top_scores, top_ids = candidates.topk(2 * k, dim=1)  # (B, 2K)
        last = step == config.max_len - 1
        scores, next_rows, next_tokens, best = _select(
            top_scores, top_ids // vocab, top_ids % vocab, tokens, hyps, done, k, last, ids.eos
        )
        for b in range(n_images):
            if not done[b]:
                done[b] = last or hyps[b].is_done(best[b], step + 1)
        if all(done):
            break
        rows = next_rows.to(device).view(-1)  # (B*K,)
        cache.reorder(rows)
        next_tokens = next_tokens.to(device).view(-1, 1)  # (B*K, 1)
        tokens = torch.cat([tokens.index_select(0, rows), next_tokens], dim=1)
        scores = scores.to(device)
        logits = model.decoder.step(next_tokens, cache)
    return [[seq for _, seq in h.items[: config.num_return_sequences]] for h in hyps]


def _start(model, fused, n_images: int, k: int, prompt: tuple[int, ...] | None) -> tuple[Tensor, KVCache]:
    """Prefill one bos row per image, then copy its cache and logits to the ``k`` beams, which start identical."""
    from mmtrain.models.generation import start_ids

    device = next(model.parameters()).device
    logits, cache = model.start(fused, start_ids(model, n_images, device, prompt), 1)
    cache.reorder(torch.arange(n_images, device=device).repeat_interleave(k))  # (B*K,) rows of the self-attention
    cache.group = k  # cross-attention K/V stay one per image, now shared by its k beams
    return logits.repeat_interleave(k, dim=0), cache  # (B*K, V)


def _select(
    top_scores: Tensor,
    beam_ids: Tensor,
    token_ids: Tensor,
    tokens: Tensor,
    hyps: list[_Hypotheses],
    done: list[bool],
    k: int,
    last: bool,
    eos: int,
) -> tuple[Tensor, Tensor, Tensor, list[float]]:
    """Move eos candidates (and every candidate on the last step) to the finished set; keep K running beams.

    Works on Python lists (a handful of candidates per image) and builds each result tensor once, on the CPU.

    Returns:
        The running beams' scores (B, K), their source rows and new tokens (B, K), and each image's best score.
    """
    n_images = top_scores.shape[0]
    next_scores = [[float("-inf")] * k for _ in range(n_images)]
    next_rows = [[b * k] * k for b in range(n_images)]
    next_tokens = [[eos] * k for _ in range(n_images)]
    history: list[list[int]] | None = None  # the running beams' tokens, read only when a hypothesis finishes
    candidates = zip(top_scores.tolist(), beam_ids.tolist(), token_ids.tolist(), strict=True)
    for b, (scores, beams, ids) in enumerate(candidates):
        slot = 0
        for score, beam, token in zip(scores, beams, ids, strict=True):
            if done[b] or slot == k or score == float("-inf"):
                break
            row = b * k + beam
            if token == eos or last:
                history = tokens.tolist() if history is None else history
                hyps[b].add(history[row] + ([] if token == eos else [token]), score)
                continue
            next_scores[b][slot], next_rows[b][slot], next_tokens[b][slot] = score, row, token
            slot += 1
    best = [max(row) for row in next_scores]
    return torch.tensor(next_scores), torch.tensor(next_rows), torch.tensor(next_tokens), best
