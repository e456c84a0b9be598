"""Top-k search over unit vectors by inner product: exact (numpy) and FAISS (exact or IVF-Flat).

``backend=auto`` picks FAISS's IVF-Flat (approximate) from ``APPROX_MIN_IMAGES`` images on when faiss-cpu is
installed, and exact search below that or without FAISS. The threshold comes from ``scripts/bench_retrieval.py``'s
sweep over index sizes (see docs/retrieval.md): below it, an IVF index that keeps recall@10 at 0.95 is not an order
of magnitude faster than exact search, which answers a query in well under a second there.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from mmtrain.errors import UserError

BACKENDS = ("auto", "exact", "faiss")
APPROX_MIN_IMAGES = 1_000_000
ROWS_PER_LIST = 500  # inverted lists: about one per 500 rows (a power of two)
TRAIN_PER_LIST = 64  # k-means training points per inverted list (FAISS warns below 39)
PROBE_FRACTION = 1 / 64  # lists visited per query, as a fraction of nlist (at least MIN_NPROBE)
MIN_NPROBE = 8


class Searcher(Protocol):
    """Scores (Q, k) best first and row ids (Q, k) of the ``k`` nearest rows to each query (Q, E)."""

    name: str

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class ExactSearch:
    """Brute-force inner product with numpy: every query against every row, ties broken by the lower row id.

    Queries are scored in chunks against tiles of rows, keeping each tile's k best and merging them, so the scores
    in flight stay small enough for the CPU caches whatever the index size.

    Args:
        embeddings: (N, E) unit vectors (float16 rows are widened to float32 once).
        chunk: queries scored at once.
        tile: rows scored at once.
    """

    name = "exact"

    def __init__(self, *, embeddings: np.ndarray, chunk: int = 256, tile: int = 32_768) -> None:
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.chunk, self.tile = chunk, tile

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32)
        scores = np.empty((len(queries), k), np.float32)
        ids = np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), self.chunk):
            block = queries[start : start + self.chunk]  # (C, E)
            best = [self._tile_best(block, row, k) for row in range(0, len(self.embeddings), self.tile)]
            tile_scores = np.concatenate([b[0] for b in best], axis=1)  # (C, tiles * k)
            tile_ids = np.concatenate([b[1] for b in best], axis=1)
            order = np.lexsort((tile_ids, -tile_scores), axis=-1)[:, :k]  # best first, lower id on ties
            scores[start : start + len(block)] = np.take_along_axis(tile_scores, order, axis=1)
            ids[start : start + len(block)] = np.take_along_axis(tile_ids, order, axis=1)
        return scores, ids

    def _tile_best(self, block: np.ndarray, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = block @ self.embeddings[row : row + self.tile].T  # (C, tile)
        tile_scores, tile_ids = top_k(sims, min(k, sims.shape[1]))
        return tile_scores, tile_ids + row


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of ``sims`` (Q, N), best first; equal scores in column order."""
    count = sims.shape[1]
    kth = np.partition(sims, count - k, axis=1)[:, count - k : count - k + 1]  # (Q, 1): each row's k-th best
    rows, cols = np.nonzero(sims >= kth)  # at least k per row; more when scores tie at the k-th
    scores = sims[rows, cols]
    order = np.lexsort((cols, -scores, rows))
    first = np.searchsorted(rows[order], np.arange(len(sims)))  # (Q,) where each row's candidates start
    pick = order[first[:, None] + np.arange(k)]  # (Q, k)
    return scores[pick], cols[pick].astype(np.int64)


class FaissSearch:
    """A FAISS index over unit vectors by inner product: ``IndexFlatIP`` (exact) or ``IndexIVFFlat`` (approximate).

    Args:
        index: a built FAISS index.
        nprobe: inverted lists visited per query (IVF only).
    """

    name = "faiss"

    def __init__(self, *, index, nprobe: int | None = None) -> None:
        self.index = index
        if nprobe is not None and hasattr(index, "nprobe"):
            index.nprobe = int(nprobe)

    @property
    def kind(self) -> str:
        return f"IVF{self.index.nlist},Flat" if hasattr(self.index, "nlist") else "Flat"

    @classmethod
    def build(cls, embeddings: np.ndarray, *, approximate: bool, seed: int = 0) -> FaissSearch:
        """Build an exact index, or an IVF-Flat one with ``default_nlist`` lists trained on a sample of the rows."""
        faiss = import_faiss()
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        dim = vectors.shape[1]
        if not approximate:
            index = faiss.IndexFlatIP(dim)
            index.add(vectors)
            return cls(index=index)
        nlist = default_nlist(len(vectors))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(len(vectors), min(len(vectors), nlist * TRAIN_PER_LIST), False)
        index.train(vectors[np.sort(sample)])
        for start in range(0, len(vectors), 262_144):  # added in slices: no second full-size copy
            index.add(vectors[start : start + 262_144])
        return cls(index=index, nprobe=default_nprobe(nlist))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, ids.astype(np.int64)

    def to_bytes(self) -> bytes:
        return import_faiss().serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, *, nprobe: int | None = None) -> FaissSearch:
        return cls(index=import_faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8)), nprobe=nprobe)


def default_nlist(count: int) -> int:
    """Inverted lists for ``count`` rows: about one per ``ROWS_PER_LIST`` rows, a power of two in 64..16,384."""
    return int(2 ** min(14, max(6, round(math.log2(max(count, 1) / ROWS_PER_LIST)))))


def default_nprobe(nlist: int) -> int:
    return max(MIN_NPROBE, int(nlist * PROBE_FRACTION))


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def import_faiss():
    try:
        import faiss
    except ImportError:
        raise UserError(
            "backend=faiss needs faiss-cpu: pip install 'mmtrain[retrieval]' (or use backend=exact)"
        ) from None
    return faiss


def choose_backend(backend: str, count: int) -> tuple[str, bool]:
    """(backend name, approximate) for an index of ``count`` images and the user's ``backend`` setting."""
    if backend not in BACKENDS:
        raise UserError(f"backend={backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "exact":
        return "exact", False
    if backend == "faiss":
        import_faiss()
        return "faiss", count >= APPROX_MIN_IMAGES
    if count >= APPROX_MIN_IMAGES and faiss_available():
        return "faiss", True
    return "exact", False
