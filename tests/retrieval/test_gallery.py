"""The search results page: escaped queries and names, images with ranks and scores, rendered by Chromium."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from mmtrain.retrieval.gallery import write_results_page
from mmtrain.retrieval.index import Hit
from tests.outputs.test_gallery import BREAKOUT, HOSTILE, chromium, needs_chromium, parse

COLOURS = {"red.png": (220, 30, 30), "green & <b>.png": (30, 180, 60), "blue.jpg": (40, 80, 230)}


def results(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, colour in COLOURS.items():
        Image.fromarray(np.full((90, 120, 3), colour, np.uint8)).save(folder / name)
    files = [str(folder / name) for name in COLOURS]
    text_hits = [Hit(1, files[0], 0.91), Hit(2, files[1], 0.5), Hit(3, files[2], -0.25)]
    image_hits = [Hit(1, files[2], 1.0), Hit(2, str(folder / "gone.jpg"), 0.3)]
    return [(HOSTILE, "text", text_hits), (files[2], "image", image_hits), (BREAKOUT, "text", text_hits[:1])]


def test_page_escapes_every_text_and_shows_ranks_and_scores(tmp_path):
    page = write_results_page(tmp_path / "out" / "search.html", results(tmp_path), title="search <1>")
    markup = page.read_text(encoding="utf-8")
    assert "<script>" not in markup and "<img src=x" not in markup and "<b>.png" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in markup and "green &amp; &lt;b&gt;.png" in markup
    assert "<title>search &lt;1&gt;</title>" in markup and "3 queries" in markup
    assert "#1 &middot; score <b>0.9100</b>" in markup and "#3 &middot; score <b>-0.2500</b>" in markup
    assert markup.count("<section>") == 3 and markup.count("<figure>") == 6
    assert markup.count('class="missing"') == 1  # the file that is gone
    dom = parse(markup)
    assert dom.scripts == 0 and len(dom.images) == 6  # 5 results that exist and the query image
    assert not list(page.parent.glob(".*.tmp"))


@needs_chromium
def test_chromium_renders_each_result_image_and_no_injected_element(tmp_path):
    page = write_results_page(tmp_path / "search.html", results(tmp_path))
    dom = parse(chromium(page, tmp_path, "--dump-dom").stdout)
    assert dom.scripts == 0 and len(dom.images) == 6
    for src in dom.images:
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()


@pytest.mark.slow  # a second browser start and a paint; the DOM render above stays in the fast suite
@needs_chromium
def test_chromium_screenshot_shows_each_result_image(tmp_path):
    page = write_results_page(tmp_path / "search.html", results(tmp_path))
    shot = tmp_path / "shot.png"
    chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1000,1400", "--hide-scrollbars")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    for colour in COLOURS.values():
        near = (np.abs(pixels - np.array(colour)).max(axis=-1) < 25).sum()
        assert near > 10_000, (colour, near)
