"""The Python API: open an index folder and search it by text, by image or by embedding.

    from mmtrain.retrieval import Index
    hits = Index.open("runs/photos-index").search(["a red circle left of a blue square"], k=10)
    hits[0][0].file, hits[0][0].score

The model that built the index (named in its manifest, or ``ckpt=``) is loaded on the first text or image query and
must be the same checkpoint, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mmtrain.errors import UserError
from mmtrain.retrieval.backends import ExactSearch, FaissSearch, Searcher, choose_backend
from mmtrain.retrieval.folder import IndexFolder, read_folder


class Hit(NamedTuple):
    """One search result: 1-based rank, the image file (absolute path) and its cosine similarity to the query."""

    rank: int
    file: str
    score: float


class Index:
    """An index folder made by ``mmtrain index``, ready to search.

    Args:
        folder: the folder's contents.
        ckpt: the checkpoint to embed queries with (default: the one the index was built with).
        device: where the model runs (auto, cpu, cuda, cuda:N).
        backend: auto, exact or faiss (see :mod:`mmtrain.retrieval.backends`).
        nprobe: inverted lists visited per query by an approximate FAISS index (default: the index's own).
    """

    def __init__(
        self,
        *,
        folder: IndexFolder,
        ckpt: str | Path | None = None,
        device: str = "auto",
        backend: str = "auto",
        nprobe: int | None = None,
    ) -> None:
        self.folder, self.ckpt, self.device, self.nprobe = folder, ckpt, device, nprobe
        self.backend, self.approximate = choose_backend(backend, len(folder.entries))
        self._searcher: Searcher | None = None
        self._model = None

    @classmethod
    def open(cls, path: str | Path, **options) -> Index:
        """Open the index folder at ``path``; ``options`` as for the constructor."""
        return cls(folder=read_folder(path), **options)

    def __len__(self) -> int:
        return len(self.folder.entries)

    @property
    def files(self) -> list[str]:
        return self.folder.files

    @property
    def manifest(self) -> dict:
        return self.folder.manifest

    @property
    def model(self):
        """The checkpoint's model, loaded once and checked to be the one that built the index."""
        if self._model is None:
            from mmtrain.models.loading import load_model
            from mmtrain.retrieval.build import same_checkpoint
            from mmtrain.retrieval.embed import checkpoint_digest, require_contrastive

            ckpt = self.ckpt or self.manifest.get("checkpoint", {}).get("path")
            if self.ckpt and not Path(self.ckpt).exists():
                raise UserError(f"ckpt={self.ckpt}: no such checkpoint file or bundle folder")
            if not ckpt or not Path(ckpt).exists():
                raise UserError(
                    f"{self.folder.root}: the checkpoint that built this index ({ckpt}) is not there; "
                    "pass ckpt=PATH to a copy of it"
                )
            same_checkpoint(self.folder, ckpt, checkpoint_digest(ckpt))
            model = load_model(ckpt).to(self.device)
            require_contrastive(model, ckpt)
            self._model = model
        return self._model

    def search(self, texts: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """The ``k`` best images for each text, best first."""
        from mmtrain.retrieval.embed import embed_texts

        self._check_k(k)
        if isinstance(texts, str):
            texts = [texts]
        lowercase = bool(self.manifest.get("text", {}).get("lowercase", True))
        return self.search_embeddings(embed_texts(self.model, list(texts), lowercase=lowercase), k)

    def search_images(self, paths: Sequence[str | Path], k: int = 10) -> list[list[Hit]]:
        """The ``k`` images most like each query image, best first; an unreadable query image is a UserError."""
        from mmtrain.retrieval.embed import embed_image_files

        self._check_k(k)
        paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        positions, embeddings, failed = embed_image_files(self.model, paths, batch_size=32, workers=0)
        if failed:
            path, reason = failed[0]
            raise UserError(f"query_image={path}: cannot read it ({reason})")
        return self.search_embeddings(embeddings, k)

    def search_embeddings(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """The ``k`` best images for each unit query embedding (Q, E), best first."""
        self._check_k(k)
        queries = np.asarray(queries, dtype=np.float32)
        width = self.manifest.get("embed_dim")
        if queries.ndim != 2 or queries.shape[1] != width:
            raise UserError(f"query embeddings of shape {queries.shape} do not fit this index (width {width})")
        scores, ids = self.searcher.search(queries, k)
        files = self.files
        return [
            [
                Hit(rank + 1, files[i], float(score))
                for rank, (i, score) in enumerate(zip(row_ids, row_scores, strict=True))
                if i >= 0
            ]
            for row_ids, row_scores in zip(ids.tolist(), scores.tolist(), strict=True)
        ]

    @property
    def searcher(self) -> Searcher:
        """The search backend over the index's embeddings, built (or read from the folder) on first use."""
        if self._searcher is None:
            vectors = self.folder.embeddings
            stored = self.folder.data_path("faiss")
            if self.backend == "exact":
                self._searcher = ExactSearch(embeddings=vectors)
            elif self.approximate and stored is not None and stored.is_file():
                nprobe = self.nprobe or self.manifest.get("faiss", {}).get("nprobe")
                self._searcher = FaissSearch.from_bytes(stored.read_bytes(), nprobe=nprobe)
            else:
                built = FaissSearch.build(vectors, approximate=self.approximate)
                self._searcher = FaissSearch(index=built.index, nprobe=self.nprobe)
        return self._searcher

    def _check_k(self, k: int) -> None:
        if len(self) == 0:
            raise UserError(f"{self.folder.root}: the index is empty (0 images); index a folder of images first")
        if not isinstance(k, int) or k < 1:
            raise UserError(f"k={k}: give a whole number of results of at least 1")
        if k > len(self):
            raise UserError(f"k={k} is larger than the index ({len(self)} images); use k<={len(self)}")
