"""Search backends: exact top-k order and ties, FAISS exact and IVF against it, the backend choice."""

from __future__ import annotations

import numpy as np
import pytest

from mmtrain.errors import UserError
from mmtrain.retrieval import backends
from mmtrain.retrieval.backends import ExactSearch, choose_backend, default_nlist, default_nprobe, top_k

faiss = pytest.importorskip("faiss", reason="faiss-cpu is not installed (pip install 'mmtrain[retrieval]')")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(count: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((50, dim)))
    return unit(centres[rng.integers(0, 50, count)] + 0.6 * rng.standard_normal((count, dim)) / np.sqrt(dim))


def test_top_k_is_best_first_and_breaks_ties_by_row():
    sims = np.array([[0.1, 0.9, 0.5, 0.9, 0.2], [0.3, 0.3, 0.3, 0.3, 0.3]], np.float32)
    scores, ids = top_k(sims, 3)
    assert ids.tolist() == [[1, 3, 2], [0, 1, 2]]
    assert np.allclose(scores, [[0.9, 0.9, 0.5], [0.3, 0.3, 0.3]])
    assert top_k(sims, 5)[1].tolist() == [[1, 3, 2, 4, 0], [0, 1, 2, 3, 4]]


def test_exact_search_matches_a_full_sort_across_tiles():
    images, queries = clustered(3000, 24), clustered(70, 24, seed=1)
    scores, ids = ExactSearch(embeddings=images.astype(np.float16), chunk=16, tile=700).search(queries, 10)
    sims = queries @ images.astype(np.float16).astype(np.float32).T
    reference = np.sort(sims, axis=1)[:, ::-1][:, :10]
    assert np.allclose(scores, reference, atol=1e-5)  # the same best scores, best first
    assert np.allclose(np.take_along_axis(sims, ids, axis=1), scores, atol=1e-5)  # of the rows it names


def test_exact_ties_go_to_the_lower_row_in_any_tile():
    """Small dyadic values make every score exact, so equal rows tie exactly wherever their tile is."""
    rng = np.random.default_rng(0)
    images = rng.integers(-4, 5, (3000, 8)).astype(np.float32) / 4
    images[2500] = images[1700] = images[5]
    scores, ids = ExactSearch(embeddings=images, chunk=16, tile=700).search(images[[5, 1700]], 4)
    assert ids[:, :3].tolist() == [[5, 1700, 2500]] * 2 and len(set(scores[0, :3].tolist())) == 1


def test_faiss_flat_agrees_with_exact_and_ivf_keeps_recall():
    images, queries = clustered(20_000, 32), clustered(200, 32, seed=1)
    exact_scores, exact_ids = ExactSearch(embeddings=images).search(queries, 10)
    flat_scores, _ = backends.FaissSearch.build(images, approximate=False).search(queries, 10)
    assert np.allclose(flat_scores, exact_scores, atol=1e-5)
    ivf = backends.FaissSearch.build(images, approximate=True)
    assert ivf.kind == f"IVF{default_nlist(20_000)},Flat" and ivf.index.nprobe == default_nprobe(default_nlist(20_000))
    _, ivf_ids = ivf.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ivf_ids.tolist(), exact_ids.tolist(), strict=True)])
    assert recall >= 0.9
    again = backends.FaissSearch.from_bytes(ivf.to_bytes(), nprobe=ivf.index.nprobe)
    assert again.search(queries, 10)[1].tolist() == ivf_ids.tolist()


def test_backend_choice_follows_the_size_threshold(monkeypatch):
    small, large = backends.APPROX_MIN_IMAGES - 1, backends.APPROX_MIN_IMAGES
    assert choose_backend("auto", small) == ("exact", False)
    assert choose_backend("auto", large) == ("faiss", True)
    assert choose_backend("faiss", small) == ("faiss", False)
    assert choose_backend("exact", large) == ("exact", False)
    with pytest.raises(UserError, match="backend=annoy: choose one of auto, exact, faiss"):
        choose_backend("annoy", 10)
    monkeypatch.setattr(backends, "faiss_available", lambda: False)
    assert choose_backend("auto", large) == ("exact", False)


def test_inverted_lists_grow_with_the_index():
    assert default_nlist(1_000) == 64 and default_nlist(1_000_000) == 2048
    assert default_nprobe(2048) == 32 and default_nprobe(64) == 8
