"""mmtrain search: the k best images of an index for text queries or query images; a table, JSONL and a gallery."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from mmtrain.errors import UserError


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, ListConfig)) else [str(value)]


def _read_queries(path: str) -> list[str]:
    """One text query per line; blank lines and ``#`` comments skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"queries={path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"queries={path}: cannot read it as UTF-8 text ({err})") from None
    texts = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not texts:
        raise UserError(f"queries={path}: the file holds no query (one text per line)")
    return texts


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for query in dict.fromkeys(row["query"] for row in rows):
        table = Table(title=escape(query), title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("score", justify="right")
        table.add_column("file", overflow="fold")
        for row in (r for r in rows if r["query"] == query):
            table.add_row(str(row["rank"]), f"{row['score']:.4f}", escape(row["file"]))
        console.print(table)


def run(cfg: DictConfig) -> list[dict]:
    from mmtrain.io import write_jsonl
    from mmtrain.retrieval.index import Index

    texts = _as_list(cfg.query) + (_read_queries(str(cfg.queries)) if cfg.queries else [])
    images = _as_list(cfg.query_image)
    if not texts and not images:
        raise UserError("nothing to search: give query=TEXT, query_image=PATH or queries=FILE")
    nprobe = int(cfg.nprobe) if cfg.nprobe is not None else None
    index = Index.open(cfg.index, ckpt=cfg.ckpt, device=cfg.device, backend=str(cfg.backend), nprobe=nprobe)
    k = cfg.k if isinstance(cfg.k, int) else str(cfg.k)
    results = (index.search(texts, k=k) if texts else []) + (index.search_images(images, k=k) if images else [])
    rows = [
        {"query": query, "rank": hit.rank, "file": hit.file, "score": round(hit.score, 6)}
        for query, hits in zip(texts + images, results, strict=True)
        for hit in hits
    ]
    write_jsonl(Path(cfg.out) / "results.jsonl", rows)
    if cfg.html:
        from mmtrain.retrieval.gallery import write_results_page

        kinds = ["text"] * len(texts) + ["image"] * len(images)
        page = write_results_page(
            cfg.html, list(zip(texts + images, kinds, results, strict=True)), embed=cfg.html_embed
        )
        print(f"mmtrain search: wrote gallery {page}", file=sys.stderr)
    if cfg.table:
        _print_table(rows)
    return rows
