"""An HTML page of search results: one section per query, its best images with rank and score.

Like the caption gallery, the page has no script and forbids scripts (Content-Security-Policy), and every piece of
text (queries, file names) is HTML-escaped. Images are embedded thumbnails or links relative to the page.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from mmtrain.io import write_text
from mmtrain.outputs.gallery import image_src

_CSP = "default-src 'none'; img-src 'self' data: file: http: https:; style-src 'unsafe-inline'"
_CSS = """
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #667085; --line: #e4e7ec;
  --accent: #2e6bd9; }
@media (prefers-color-scheme: dark) { :root { --bg: #111418; --card: #1b2027; --ink: #e6e9ef; --muted: #98a2b3;
  --line: #2c333d; --accent: #7aa7ff; } }
body { margin: 0; padding: 24px; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
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
    body = "\n".join(sections)
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1><p>{count}</p></header>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
    write_text(path, page)
    return path


def _picture(src: str | None, alt: str) -> str:
    if src is None:
        return '<div class="missing">image unavailable</div>'
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}" loading="lazy">'


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
        cards.append(f"<figure>{_picture(src, file.name)}<figcaption>{caption}</figcaption></figure>")
    return f'<section><h2>{heading}</h2><div class="grid">{"".join(cards)}</div></section>'
