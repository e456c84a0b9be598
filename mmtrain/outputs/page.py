"""The frame every HTML page of mmtrain shares: a script-free document, its colours, and its pictures.

A page has no script and forbids scripts (Content-Security-Policy), and every piece of text is HTML-escaped. Images
are embedded as small base64 JPEG thumbnails (one file to share) or linked by paths relative to the page's folder.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from urllib.parse import quote

CSP = "default-src 'none'; img-src 'self' data: file: http: https:; style-src 'unsafe-inline'"
BASE_CSS = """
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #667085; --line: #e4e7ec;
  --accent: #2e6bd9; }
@media (prefers-color-scheme: dark) { :root { --bg: #111418; --card: #1b2027; --ink: #e6e9ef; --muted: #98a2b3;
  --line: #2c333d; --accent: #7aa7ff; } }
body { margin: 0; padding: 24px; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
"""


def html_page(title: str, summary: str, body: str, *, css: str, main_class: str | None = None) -> str:
    """A whole document: ``title`` as its title and heading, ``summary`` (HTML) under it, ``body`` (HTML) in main.

    Args:
        css: The page's own rules, after :data:`BASE_CSS`.
        main_class: The class of the main element, if any.
    """
    main = f'<main class="{main_class}">' if main_class else "<main>"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{BASE_CSS}{css}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1><p>{summary}</p></header>\n"
        f"{main}\n{body}\n</main>\n</body>\n</html>\n"
    )


def picture(src: str | None, alt: str) -> str:
    """The image at ``src`` (lazily loaded), or a placeholder when it could not be read."""
    if src is None:
        return '<div class="missing">image unavailable</div>'
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}" loading="lazy">'


def image_src(file: Path, page_dir: Path, embed: bool, thumb_size: int) -> str | None:
    """A data URI of the thumbnail, or the file's URL relative to the page; None when it cannot be read."""
    if embed:
        return _thumbnail_uri(file, thumb_size)
    try:
        relative = os.path.relpath(file.resolve(), page_dir.resolve())
    except ValueError:  # another drive (Windows): no relative path exists
        return file.resolve().as_uri()
    return quote(Path(relative).as_posix())


def _thumbnail_uri(file: Path, size: int) -> str | None:
    from PIL import Image, ImageOps

    from mmtrain.data.images import to_rgb

    try:
        with Image.open(file) as image:
            thumb = to_rgb(ImageOps.exif_transpose(image))
            thumb.thumbnail((size, size), Image.Resampling.BICUBIC)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
