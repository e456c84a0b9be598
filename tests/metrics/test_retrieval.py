"""Retrieval recall from embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from mmtrain.errors import UserError
from mmtrain.metrics.retrieval import image_to_text_ranks, retrieval_recall, text_to_image_ranks


def test_recall_on_a_hand_made_case() -> None:
    images = np.eye(3, dtype=np.float32)  # three orthogonal images
    # Texts 0,1 describe image 0 (text 1 looks more like image 1), text 2 image 1 (weakly), text 3 image 2.
    texts = np.array([[1, 0, 0], [0.2, 0.9, 0], [0, 0.5, 0], [0, 0, 1]], dtype=np.float32)
    owner = [0, 0, 1, 2]
    np.testing.assert_array_equal(text_to_image_ranks(images, texts, np.array(owner)), [0, 1, 0, 0])
    np.testing.assert_array_equal(image_to_text_ranks(images, texts, np.array(owner)), [0, 1, 0])
    recall = retrieval_recall(images, texts, owner, ks=(1, 2))
    assert recall["t2i_R@1"] == 0.75
    assert recall["t2i_R@2"] == 1.0
    assert recall["i2t_R@1"] == pytest.approx(2 / 3)
    assert recall["rsum"] == pytest.approx(100 * (0.75 + 1.0 + 2 / 3 + 1.0))


def test_chunking_does_not_change_the_answer() -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(50, 8))
    owner = np.repeat(np.arange(50), 5)
    texts = images[owner] + rng.normal(scale=1.5, size=(250, 8))
    whole = retrieval_recall(images, texts, owner, chunk=10_000)
    assert retrieval_recall(images, texts, owner, chunk=7) == whole
    assert 0 < whole["t2i_R@1"] < whole["t2i_R@5"] < whole["t2i_R@10"] < 1


def test_images_without_text_are_left_out_of_image_to_text() -> None:
    images = np.eye(3)
    texts = np.eye(3)[:2]
    recall = retrieval_recall(images, texts, [0, 1])
    assert recall["i2t_R@1"] == 1.0


def test_bad_shapes_are_user_errors() -> None:
    with pytest.raises(UserError, match="width"):
        retrieval_recall(np.ones((2, 3)), np.ones((2, 4)), [0, 1])
    with pytest.raises(UserError, match="one image index per text"):
        retrieval_recall(np.ones((2, 3)), np.ones((2, 3)), [0])
    with pytest.raises(UserError, match="outside"):
        retrieval_recall(np.ones((2, 3)), np.ones((2, 3)), [0, 2])
