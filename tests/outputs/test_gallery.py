"""The HTML gallery: escaped text, embedded or relative images, references with CIDEr-D, rendered by Chromium."""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmtrain.metrics import coco_caption_scores
from mmtrain.outputs.coco import assign_image_ids, coco_image_id, load_references, references_by_file
from mmtrain.outputs.gallery import write_gallery

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is absent (Debian: apt-get install chromium) for the rendering tests"
)
COLOURS = {
    "000000000042.jpg": (220, 30, 30),
    "COCO_val2014_000000008775.jpg": (30, 180, 60),
    "photo & co.png": (40, 80, 230),
}
HOSTILE = "<script>alert(1)</script> & friends"
BREAKOUT = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def rows(tmp_path: Path) -> list[dict]:
    """Three solid-colour images (one with a white box) and captions that try to inject markup."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name, colour in COLOURS.items():
        pixels = np.zeros((120, 160, 3), np.uint8)
        pixels[:] = colour
        pixels[30:60, 40:100] = 255
        Image.fromarray(pixels).save(folder / name)
    files = [str(folder / name) for name in COLOURS]
    return [
        {"file": files[0], "image_id": 42, "caption": HOSTILE, "captions": [HOSTILE, "a red field", BREAKOUT]},
        {"file": files[1], "image_id": 8775, "caption": "a white box on green", "captions": ["a white box on green"]},
        {"file": files[2], "image_id": 2, "caption": "", "captions": [""]},
    ]


REFERENCES = {
    42: ["a red square with a white box", "a white rectangle on red"],
    8775: ["a white rectangle on a green background", "green image with a <b>white</b> box"],
}


class _Dom(HTMLParser):
    """Collects <img> sources, <script> elements and the text of every <li>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str | None] = []
        self.scripts = 0
        self.items: list[str] = []
        self._in_item = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.images += [dict(attrs).get("src")] if tag == "img" else []
        self.scripts += tag == "script"
        if tag == "li":
            self._in_item, self.items = True, [*self.items, ""]

    def handle_endtag(self, tag: str) -> None:
        self._in_item = self._in_item and tag != "li"

    def handle_data(self, data: str) -> None:
        if self._in_item:
            self.items[-1] += data


def parse(markup: str) -> _Dom:
    dom = _Dom()
    dom.feed(markup)
    return dom


def chromium(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``page`` offline, with a throwaway profile."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *mode, page.resolve().as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_text_is_escaped_and_thumbnails_embedded(rows, tmp_path):
    page = write_gallery(tmp_path / "out" / "gallery.html", rows)
    markup = page.read_text(encoding="utf-8")
    assert "<script>alert" not in markup and "<img src=x" not in markup
    assert html.escape(HOSTILE) in markup and "&amp; friends" in markup
    dom = parse(markup)
    assert dom.scripts == 0 and len(dom.images) == len(rows)
    assert dom.items == [HOSTILE, "a red field", BREAKOUT, "a white box on green", "(empty caption)"]
    for src in dom.images:
        assert src.startswith("data:image/jpeg;base64,")
        thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert max(thumb.size) <= 256 and thumb.size[0] > thumb.size[1]  # the whole image, aspect kept
    assert not list(page.parent.glob(".*.tmp"))  # written atomically


def test_linked_images_use_paths_relative_to_the_page(rows, tmp_path):
    page = write_gallery(tmp_path / "site" / "sub" / "gallery.html", rows, embed=False)
    sources = parse(page.read_text(encoding="utf-8")).images
    assert sources[0] == "../../images/000000000042.jpg"
    assert sources[2] == "../../images/photo%20%26%20co.png"  # quoted for a URL
    assert [Path(page.parent, s.replace("%20", " ").replace("%26", "&")).resolve() for s in sources] == [
        Path(row["file"]).resolve() for row in rows
    ]


def test_references_and_cider_d_are_shown(rows, tmp_path):
    page = write_gallery(tmp_path / "gallery.html", rows, references=REFERENCES, title="val <2014>")
    markup = page.read_text(encoding="utf-8")
    expected = coco_caption_scores(REFERENCES, {42: HOSTILE, 8775: "a white box on green"})["CIDEr"]
    assert f"mean CIDEr-D {expected:.3f} over the 2 with references" in markup
    assert markup.count('class="score"') == 2 and markup.count('class="refs"') == 2
    assert "green image with a &lt;b&gt;white&lt;/b&gt; box" in markup
    assert "<title>val &lt;2014&gt;</title>" in markup


def test_coco_image_ids_from_file_names():
    assert coco_image_id("a/000000012448.jpg") == 12448
    assert coco_image_id("COCO_val2014_000000008775.jpg") == 8775
    assert coco_image_id("holiday.jpg") is None and coco_image_id("IMG_0001.jpg") is None
    assert assign_image_ids(["x/000000000007.jpg", "y/000000000009.png"]) == [7, 9]
    assert assign_image_ids(["x/000000000007.jpg", "y/000000000007.png"]) == [0, 1]  # not unique
    assert assign_image_ids(["000000000007.jpg", "holiday.jpg"]) == [0, 1]  # not all carry one


def test_references_match_by_file_name_then_by_id(tmp_path):
    captions = {
        "images": [{"id": 5, "file_name": "train/holiday.jpg"}, {"id": 8775, "file_name": "other.jpg"}],
        "annotations": [
            {"image_id": 5, "id": 1, "caption": "a beach"},
            {"image_id": 8775, "id": 2, "caption": "a green field"},
        ],
    }
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    references = load_references(tmp_path / "captions.json")
    files = ["photos/holiday.jpg", "COCO_val2014_000000008775.jpg", "000000000001.jpg"]
    assert assign_image_ids(files[:2], references) == [5, 8775]
    assert references_by_file(files, references) == {files[0]: ["a beach"], files[1]: ["a green field"]}


@needs_chromium
def test_chromium_renders_every_image_and_no_injected_element(rows, tmp_path):
    page = write_gallery(tmp_path / "gallery.html", rows, references=REFERENCES)
    dom = parse(chromium(page, tmp_path, "--dump-dom").stdout)
    assert dom.scripts == 0
    assert len(dom.images) == len(rows) and all(src for src in dom.images)
    for src in dom.images:
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert dom.items[:3] == [HOSTILE, "a red field", BREAKOUT]  # text nodes, not elements


@pytest.mark.slow  # a browser start and a paint each; the fast suite keeps the DOM render above and the link paths
@needs_chromium
@pytest.mark.parametrize("embed", [True, False])
def test_chromium_screenshot_shows_the_images(rows, tmp_path, embed):
    """Each image's colour is on screen: embedded thumbnails decode and relative links resolve under file://."""
    page = write_gallery(tmp_path / "site" / "gallery.html", rows, embed=embed)
    shot = tmp_path / "shot.png"
    chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1000,700", "--hide-scrollbars")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    for colour in COLOURS.values():
        near = (np.abs(pixels - np.array(colour)).max(axis=-1) < 25).sum()
        assert near > 20_000, (colour, near)


def test_caption_command_writes_a_gallery_and_scorable_results(tiny_checkpoint, tiny_store, tmp_path):
    """``mmtrain caption html=... references=...``: COCO ids from the names, a gallery, results eval can score."""
    from tests.conftest import run_in_process

    images = sorted((tiny_store.parent / "raw" / "test2017").glob("*.jpg"))[:4]
    references = tiny_store / "references_test.json"
    out, page = tmp_path / "out", tmp_path / "pages" / "gallery.html"
    result = run_in_process(
        "caption", f"ckpt={tiny_checkpoint}", f"inputs=[{','.join(map(str, images))}]", f"out={out}",
        f"html={page}", f"references={references}", "decoding=beam3", "decoding.num_return_sequences=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in results] == [coco_image_id(p) for p in images]
    markup = page.read_text(encoding="utf-8")
    dom = parse(markup)
    assert len(dom.images) == 4 and markup.count('class="score"') == 4
    assert markup.count('class="captions"') == 4 and len(dom.items) == 4 * 2 + 4 * 5  # 2 captions, 5 references
    scored = run_in_process("eval", f"results={out / 'results.json'}", f"references={references}", "allow_partial=true",
                            f"out={tmp_path / 'eval'}", "bootstrap=0", "meteor=false")  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "CIDEr" in json.loads(scored.stdout.strip().splitlines()[-1])
