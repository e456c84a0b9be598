"""Left-right mirroring of training images keeps their captions true."""

from __future__ import annotations

import torch

from mmtrain.data.datamodule import Batch, mirror_caption

SWAPS = {"left": "right", "right": "left"}


def test_mirror_caption_swaps_whole_words_and_keeps_case() -> None:
    assert mirror_caption("a red circle to the left of a blue square", SWAPS) == (
        "a red circle to the right of a blue square"
    )
    assert mirror_caption("Left and right, leftover bright", SWAPS) == "Right and left, leftover bright"
    assert mirror_caption("a cat above a dog", SWAPS) == "a cat above a dog"


def _batch() -> Batch:
    images = torch.arange(4 * 3 * 2 * 5, dtype=torch.uint8).reshape(4, 3, 2, 5)
    pool = [[[10 + i, 1], [20 + i, 1]] for i in range(4)]
    mirrored = [[[50 + i, 1], [60 + i, 1]] for i in range(4)]
    return Batch(images, torch.arange(4), caption_pool=pool, mirrored_pool=mirrored)


def test_mirrored_images_get_mirrored_captions_reproducibly() -> None:
    batch = _batch()
    out = batch.choose_captions(1, seed=7, hflip=0.5)
    again = batch.choose_captions(1, seed=7, hflip=0.5)
    assert torch.equal(out.images, again.images) and torch.equal(out.input_ids, again.input_ids)
    flipped = [not torch.equal(out.images[i], batch.images[i]) for i in range(4)]
    for i, was_flipped in enumerate(flipped):
        expected = batch.images[i].flip(-1) if was_flipped else batch.images[i]
        assert torch.equal(out.images[i], expected)
        assert (int(out.input_ids[i, 0]) >= 50) == was_flipped  # captions from the mirrored pool iff flipped
    flips = 0
    for seed in range(25):
        mirrored = batch.choose_captions(1, seed, 0.5).images
        flips += sum(not torch.equal(mirrored[i], batch.images[i]) for i in range(4))
    assert 25 <= flips <= 75  # about half of 100 images
    assert torch.equal(batch.images, _batch().images)  # the input batch is left untouched


def test_no_hflip_leaves_images_and_pool_alone() -> None:
    batch = _batch()
    out = batch.choose_captions(2, seed=3)
    assert torch.equal(out.images, batch.images)
    assert all(int(t) < 50 for t in out.input_ids[:, 0])
