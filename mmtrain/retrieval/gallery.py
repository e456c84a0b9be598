"""An HTML page of search results: one section per query, its best images with rank and score.

Built by :mod:`mmtrain.outputs.page`, as the caption gallery is: no script, every piece of text (queries, file names)
HTML-escaped, thumbnails embedded or images linked.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from mmtrain.io import write_text
from mmtrain.outputs.page import html_page, image_src, picture

_CSS = """
h1 { margin: 0 0 4px; font-size: 22px; }
section { margin: 24px 0; }
h2 { margin: 0 0 10px; font-size: 16px; overflow-wrap: anywhere; }
h2 .kind { color: var(--muted); font-weight: 400; margin-right: 6px; }
h2 img { height: 64px; vertical-align: middle; border-radius: 6px; margin-left: 8px; }
.grid { display: grid; gap: 12px; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
figure img, figure .missing { display: block; width: 100%; aspect-ratio: 1 / 1; object-fit: contain;
  background: var(--line); }
figure .missing { display: grid; place-items: center; color: var(--muted); }
figcaption { padding: 8px 10px; font-size: 12px; }
figcaption p { margin: 2px 0; }
.score b { color: var(--accent); font-size: 14px; }
.file { color: var(--muted); overflow-wrap: anywhere; }
"""


def write_results_page(
    path: str | os.PathLike,
    results: Sequence[tuple[str, str, Sequence]],
    *,
    title: str = "mmtrain search",
    embed: bool = True,
    thumb_size: int = 256,
) -> Path:
    """Write the results page, atomically.

    Args:
        path: The page to write.
        results: ``(query, kind, hits)`` per query: kind "text" or "image" (the query is then an image file), hits
            as returned by ``Index.search`` (``rank``, ``file``, ``score``), best first.
        title: The page's title and heading.
        embed: Embed base64 JPEG thumbnails (True) or link the image files by relative paths (False).
        thumb_size: The longer side of embedded thumbnails, in pixels.

    Returns:
        The page's path.
    """
    path = Path(path)
    sections = [_section(query, kind, hits, path.parent, embed, thumb_size) for query, kind, hits in results]
    count = f"{len(results)} quer{'ies' if len(results) != 1 else 'y'}"
    page = html_page(title, count, "\n".join(sections), css=_CSS)
    write_text(path, page)
    return path


def _section(query: str, kind: str, hits: Sequence, page_dir: Path, embed: bool, thumb_size: int) -> str:
    esc = html.escape
    heading = f'<span class="kind">{esc(kind)}</span>{esc(Path(query).name if kind == "image" else query)}'
    if kind == "image":
        src = image_src(Path(query), page_dir, embed, thumb_size)
        heading += f'<img src="{esc(src)}" alt="query image">' if src else ""
    cards = []
    for hit in hits:
        file = Path(hit.file)
        caption = (
            f'<p class="score">#{hit.rank} &middot; score <b>{hit.score:.4f}</b></p>'
            f'<p class="file" title="{esc(str(file))}">{esc(file.name)}</p>'
        )
        src = image_src(file, page_dir, embed, thumb_size)
        cards.append(f"<figure>{picture(src, file.name)}<figcaption>{caption}</figcaption></figure>")
    return f'<section><h2>{heading}</h2><div class="grid">{"".join(cards)}</div></section>'
