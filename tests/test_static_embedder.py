"""Routing's static prompt vectors: distilled from MiniLM's word pieces, built once per
machine and kept, unit length, and close for prompts that ask alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router.routing.static_embedder import (
    DIMS,
    MAX_CHARS,
    StaticEmbedder,
    distil,
    load_table,
    table_path,
)


class FakePieces:
    """A vocabulary-sized random piece matrix, counting how often it is asked for."""

    def __init__(self, rows: int) -> None:
        self.calls = 0
        self.rows = rows

    def piece_vectors(self) -> np.ndarray:
        """Seeded random rows."""
        self.calls += 1
        return np.random.default_rng(7).normal(size=(self.rows, 384)).astype(np.float32)


def test_distil_reduces_centres_and_weights_rare_pieces_up() -> None:
    pieces = np.random.default_rng(1).normal(size=(600, 384)).astype(np.float32)
    table = distil(pieces, dims=32)
    assert table.shape == (600, 32) and table.dtype == np.float32
    assert not table[0].any()  # id 0 weighs log(1) = 0
    norms = np.linalg.norm(table, axis=1)
    assert norms[500:].mean() > norms[1:100].mean()  # later (rarer) ids weigh more


def test_the_table_is_built_once_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIPSYNC_CACHE_DIR", str(tmp_path))
    model = FakePieces(30522)
    first = load_table(model)
    assert table_path().parent == tmp_path and table_path().is_file()
    again = load_table(model)
    assert model.calls == 1 and np.array_equal(first, again)
    assert first.shape == (30522, DIMS)
    assert [p.name for p in tmp_path.iterdir()] == [table_path().name]  # no temp file left


def test_a_bad_file_is_rebuilt_and_an_unwritable_folder_keeps_it_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIPSYNC_CACHE_DIR", str(tmp_path))
    tmp_path.joinpath(table_path().name).write_bytes(b"not a table")
    model = FakePieces(30522)
    assert load_table(model).shape == (30522, DIMS) and model.calls == 1
    np.save(table_path(), np.zeros((5, 3), dtype=np.float32))  # another layout
    assert load_table(model).shape == (30522, DIMS) and model.calls == 2
    assert oct(table_path().stat().st_mode & 0o777) == oct(0o644)  # readable by all
    nan = np.full((30522, DIMS), np.nan, dtype=np.float32)
    np.save(table_path(), nan)
    assert np.isfinite(load_table(model)).all() and model.calls == 3
    assert load_table(model, rows=30522).shape[0] == 30522 and model.calls == 3
    assert load_table(model, rows=100).shape[0] == 30522 and model.calls == 4  # not 100 rows
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setenv("FLIPSYNC_CACHE_DIR", str(blocked / "cache"))
    assert load_table(model).shape == (30522, DIMS) and model.calls == 5
    assert not list(tmp_path.glob("*.npy.tmp*")) and len(list(tmp_path.glob("*.npy"))) == 1
    with pytest.raises(ValueError, match="30522 rows"):
        StaticEmbedder(np.zeros((10, DIMS), dtype=np.float32))


def test_vectors_are_unit_length_clipped_and_zero_without_pieces() -> None:
    table = np.random.default_rng(3).normal(size=(30522, 8)).astype(np.float32)
    embedder = StaticEmbedder(table)
    rows = embedder.embed(["a teal mug", "", "x" * MAX_CHARS + " totally different words"])
    assert rows.shape == (3, 8)
    assert np.isclose(np.linalg.norm(rows[0]), 1.0) and not rows[1].any()
    assert np.allclose(rows[2], embedder.embed(["x" * MAX_CHARS])[0])  # read up to MAX_CHARS
    assert embedder.embed([]).shape == (0, 8)


def test_the_packaged_table_puts_paraphrases_closer_than_other_tasks() -> None:
    embedder = StaticEmbedder()  # the machine's table, built from the packaged MiniLM
    ask, same, other = embedder.embed([
        "What is the capital city of France?",
        "Name the capital of France.",
        "Integrate x squared from zero to one and simplify the result.",
    ])  # fmt: skip
    assert float(ask @ same) > float(ask @ other) + 0.1
