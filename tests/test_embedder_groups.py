"""The MiniLM embedder runs texts of like length together (router.semantic.embedder): the
vectors are those of each text embedded alone, and no group pays much for padding."""

from __future__ import annotations

import numpy as np

from router.semantic.embedder import PADDING_ALLOWED, OnnxMiniLmEmbedder, length_groups


def test_groups_cover_every_text_once_and_bound_the_padding() -> None:
    lengths = [12, 250, 14, 13, 256, 90, 95, 11, 256, 40]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        own = sum(lengths[i] for i in group)
        padded = len(group) * max(lengths[i] for i in group)
        assert len(group) == 1 or padded <= PADDING_ALLOWED * own
    assert len(groups) < len(lengths)  # like lengths do share a run
    assert length_groups([]) == []


def test_a_mixed_batch_gives_each_texts_own_vector() -> None:
    embedder = OnnxMiniLmEmbedder()
    texts = [
        "card declined",
        "Why was my card declined at the supermarket yesterday when I had money in my "
        "account and the terminal said the payment could not be processed? " * 6,
        "how do I top up",
        "I would like to know how long a transfer from my savings account takes to arrive.",
    ]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([text]) for text in texts])
    assert together.shape == (4, embedder.dim)
    assert np.allclose(together, alone, atol=1e-5)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
