"""A self-contained HTML gallery of captioned images: thumbnails, every returned caption, references and CIDEr-D.

The page is built by :mod:`mmtrain.outputs.page`: no script, every piece of text HTML-escaped, thumbnails embedded or
images linked.
"""

from __future__ import annotations

import html
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmtrain.io import write_text
from mmtrain.outputs.page import html_page, image_src, picture

_CSS = """
* { box-sizing: border-box; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0 0 20px; color: var(--muted); }
.grid { display: grid; gap: 16px; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); align-items: start; }
.card { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
.card img, .card .missing { display: block; width: 100%; aspect-ratio: 1 / 1; object-fit: contain;
  background: var(--line); }
.card .missing { display: grid; place-items: center; color: var(--muted); }
figcaption { padding: 10px 12px 12px; }
.file { margin: 0 0 6px; color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.captions { margin: 0; padding-left: 20px; }
.captions li { margin: 2px 0; overflow-wrap: anywhere; }
.captions li:first-child { font-weight: 600; }
.captions li:only-child { list-style: none; margin-left: -20px; }
.score { margin: 8px 0 4px; font-size: 12px; color: var(--muted); }
.score b { color: var(--accent); font-size: 14px; }
.refs-title { margin: 8px 0 2px; font-size: 11px; text-transform: uppercase; letter-spacing: .05em;
  color: var(--muted); }
.score + .refs-title { margin-top: 2px; }
.refs { margin: 0; padding-left: 18px; color: var(--muted); font-size: 12px; }
.refs li { overflow-wrap: anywhere; }
.empty { font-style: italic; color: var(--muted); font-weight: 400; }
"""


def write_gallery(
    path: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    *,
    references: Mapping[Hashable, Sequence[str]] | None = None,
    title: str = "mmtrain captions",
    embed: bool = True,
    thumb_size: int = 256,
) -> Path:
    """Write an HTML gallery of captioned images, atomically.

    Args:
        path: The page to write.
        rows: One per image, as ``mmtrain caption`` writes them: ``file``, ``image_id``, ``caption`` and optionally
            ``captions`` (every returned sequence; ``caption`` is the first).
        references: Reference captions keyed by a row's ``file`` (as given) or its ``image_id``. Rows with references
            show them and their CIDEr-D, computed over the rows that have references.
        title: The page's title and heading.
        embed: Embed base64 JPEG thumbnails (True) or link the image files by relative paths (False).
        thumb_size: The longer side of embedded thumbnails, in pixels.

    Returns:
        The page's path.
    """
    path = Path(path)
    matched = [_references_of(row, references or {}) for row in rows]
    scores = _cider_per_image(rows, matched)
    cards = [
        _card(row, refs, score, image_src(Path(row["file"]), path.parent, embed, thumb_size))
        for row, refs, score in zip(rows, matched, scores, strict=True)
    ]
    write_text(path, html_page(title, _summary(len(rows), scores), "\n".join(cards), css=_CSS, main_class="grid"))
    return path


def _references_of(row: Mapping[str, Any], references: Mapping[Hashable, Sequence[str]]) -> list[str] | None:
    refs = references.get(str(row["file"]))
    if refs is None and row.get("image_id") is not None:
        refs = references.get(row["image_id"])
    return [str(r) for r in refs] if refs else None


def _cider_per_image(rows: Sequence[Mapping[str, Any]], matched: list[list[str] | None]) -> list[float | None]:
    """CIDEr-D of each row's first caption, with document frequencies over the rows that have references."""
    scored = [i for i, refs in enumerate(matched) if refs]
    if not scored:
        return [None] * len(rows)
    from mmtrain.metrics import cider_d, tokenize_corpus

    ref_tokens = tokenize_corpus({i: matched[i] for i in scored})
    cand_tokens = tokenize_corpus({i: [str(rows[i]["caption"])] for i in scored})
    per_image = cider_d([ref_tokens[i] for i in scored], [cand_tokens[i][0] for i in scored]).per_image
    scores: list[float | None] = [None] * len(rows)
    for i, value in zip(scored, per_image, strict=True):
        scores[i] = float(value)
    return scores


def _card(row: Mapping[str, Any], references: list[str] | None, score: float | None, src: str | None) -> str:
    esc = html.escape
    file = Path(str(row["file"]))
    captions = [str(c) for c in row.get("captions") or [row["caption"]]]
    items = "".join(f"<li>{esc(c)}</li>" if c else '<li class="empty">(empty caption)</li>' for c in captions)
    parts = [
        f'<p class="file" title="{esc(str(file))}">{esc(file.name)} &middot; id {esc(str(row.get("image_id")))}</p>',
        f'<ol class="captions">{items}</ol>',
    ]
    if score is not None:
        parts.append(f'<p class="score">CIDEr-D <b>{score:.3f}</b></p>')
    if references:
        parts.append('<p class="refs-title">references</p>')
        parts.append('<ul class="refs">' + "".join(f"<li>{esc(r)}</li>" for r in references) + "</ul>")
    return f'<figure class="card">{picture(src, captions[0])}<figcaption>{"".join(parts)}</figcaption></figure>'


def _summary(count: int, scores: list[float | None]) -> str:
    text = f"{count} image{'s' if count != 1 else ''}"
    values = [s for s in scores if s is not None]
    if values:
        text += (
            f" &middot; mean CIDEr-D {sum(values) / len(values):.3f} over the {len(values)} with references"
            " (document frequencies from those references)"
        )
    return text
