"""Batched beam search on the KV cache, with length penalty, no-repeat-ngram and min/max length."""

from __future__ import annotations

import torch
from torch import Tensor

from mmtrain.data.text import BOS_ID, EOS_ID


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


def beam_search(model, fused, n_images: int, config) -> list[list[list[int]]]:
    """Beam search for ``n_images`` images; returns ``num_return_sequences`` token lists per image."""
    from mmtrain.models.generation import _constrain

    k = config.num_beams
    device = next(model.parameters()).device
    bos = torch.full((n_images * k, 1), BOS_ID, dtype=torch.long, device=device)
    logits, cache = model.start(fused, bos, k)
    scores = torch.zeros(n_images, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand from the first only
    tokens = torch.empty(n_images * k, 0, dtype=torch.long, device=device)
    hyps = [_Hypotheses(max(k, config.num_return_sequences), config.length_penalty) for _ in range(n_images)]
    done = [False] * n_images
    for step in range(config.max_len):
        logp = torch.log_softmax(_constrain(logits.float(), step, tokens, config), dim=-1)  # (B*K, V)
        vocab = logp.shape[-1]
        candidates = (scores.view(-1, 1) + logp).view(n_images, k * vocab)  # (B, K*V)
        top_scores, top_ids = candidates.topk(2 * k, dim=1)  # (B, 2K)
        beam_ids, token_ids = top_ids // vocab, top_ids % vocab
        last = step == config.max_len - 1
        next_scores, next_rows, next_tokens = _select(
            top_scores, beam_ids, token_ids, tokens, hyps, done, k, step, last, device
        )
        for b in range(n_images):
            if not done[b]:
                done[b] = last or hyps[b].is_done(float(next_scores[b].max()), step + 1)
        if all(done):
            break
        rows = next_rows.view(-1)  # (B*K,)
        cache.reorder(rows)
        tokens = torch.cat([tokens.index_select(0, rows), next_tokens.view(-1, 1)], dim=1)
        scores = next_scores
        logits = model.decoder.step(next_tokens.view(-1, 1), cache)
    return [[seq for _, seq in h.items[: config.num_return_sequences]] for h in hyps]


def _select(
    top_scores: Tensor,
    beam_ids: Tensor,
    token_ids: Tensor,
    tokens: Tensor,
    hyps: list[_Hypotheses],
    done: list[bool],
    k: int,
    step: int,
    last: bool,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """Move eos candidates (and every candidate on the last step) to the finished set; keep K running beams."""
    n_images = top_scores.shape[0]
    next_scores = torch.full((n_images, k), float("-inf"), device=device)
    next_rows = torch.zeros(n_images, k, dtype=torch.long, device=device)
    next_tokens = torch.full((n_images, k), EOS_ID, dtype=torch.long, device=device)
    top_scores_l, beam_l, token_l = top_scores.tolist(), beam_ids.tolist(), token_ids.tolist()
    history = tokens.tolist()
    for b in range(n_images):
        if done[b]:
            next_rows[b] = b * k
            continue
        slot = 0
        for score, beam, token in zip(top_scores_l[b], beam_l[b], token_l[b], strict=True):
            if score == float("-inf"):
                break
            row = b * k + beam
            if token == EOS_ID or last:
                hyps[b].add(history[row] + ([] if token == EOS_ID else [token]), score)
                continue
            next_scores[b, slot], next_rows[b, slot], next_tokens[b, slot] = score, row, token
            slot += 1
            if slot == k:
                break
    return next_scores, next_rows, next_tokens
