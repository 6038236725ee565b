"""Prompt vectors for routing from a static word-piece table distilled from MiniLM.

Routing needs a vector per prompt for its difficulty regression (router.routing.difficulty).
Running MiniLM costs 2.5-4.5 ms of CPU per prompt, most of a router's CPU per request; the
same model's knowledge, distilled into one vector per word piece, costs tens of microseconds:
tokenize, average the pieces' rows, scale to unit length.

The table is model2vec's recipe (Tulkens and van Dongen, 2024; MIT): each of MiniLM's 30,522
word pieces is run through the model alone, the outputs are reduced to DIMS dimensions by
PCA, and each row is weighted by log(1 + id), Zipf's law read off the vocabulary's order
(word-piece ids run roughly from frequent to rare). model2vec's own distiller needs PyTorch
and the model's PyTorch weights; this table comes from the packaged, checksummed ONNX file
the semantic cache already runs, in about 15 seconds of CPU, once per machine: it is kept
under the cache folder (FLIPSYNC_CACHE_DIR, default ~/.cache/flipsync; a folder others can
write to could steer routing, so point it at one only FlipSync writes) by the recipe's
version and the model's checksum, written atomically (processes starting together may each
build it; the last write wins, whole). The build runs where the route stage is built, at a
router's start: make's install step, the Docker image and the test session build it first.

Measured on held-out public datasets (bench/routing, leave one dataset out; docs/routing.md):
the difficulty regression on these vectors routes as well as on MiniLM's (mean APGR 0.60
against 0.58 over ten held-out datasets).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from router.semantic.embedder import MODEL_SHA256, OnnxMiniLmEmbedder

log = logging.getLogger(__name__)

NAME = "minilm-static-256"
"""The vectors' name, recorded with the difficulty weights trained on them."""
RECIPE = 1
"""Version of distil(): a change to it builds new tables (the file name carries it)."""
DIMS = 256
MAX_CHARS = 4000
"""Characters of a prompt read (its start: what is asked, and most of its material)."""
_build_lock = threading.Lock()


class PieceModel(Protocol):
    """What a table is distilled from: the model's output for each word piece alone."""

    def piece_vectors(self) -> np.ndarray:
        """One row per vocabulary id."""
        ...


def cache_dir() -> Path:
    """Where built tables are kept (FLIPSYNC_CACHE_DIR, else ~/.cache/flipsync)."""
    configured = os.environ.get("FLIPSYNC_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "flipsync"


def table_path() -> Path:
    """The table's file for the packaged model."""
    return cache_dir() / f"{NAME}-r{RECIPE}-{MODEL_SHA256[:16]}.npy"


def distil(pieces: np.ndarray, dims: int = DIMS) -> np.ndarray:
    """The static table from each word piece's model output (rows in vocabulary order):
    centred, PCA to dims, each row weighted by log(1 + its id)."""
    centred = pieces.astype(np.float64) - pieces.mean(axis=0)
    _u, _s, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dims].T
    zipf = np.log1p(np.arange(len(reduced), dtype=np.float64))[:, None]
    return np.asarray(reduced * zipf, dtype=np.float32)


def load_table(model: PieceModel | None = None, rows: int | None = None) -> np.ndarray:
    """The static table: read from the cache folder, else distilled from model (the packaged
    MiniLM by default) and kept there. A file that is not a finite table of DIMS columns
    (and rows rows, when given) is built again; a folder that cannot be written keeps the
    table in memory only."""
    path = table_path()
    with _build_lock:
        try:
            table = np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
            if _usable(table, rows):
                return table
            log.warning("%s is not a usable routing table (shape %s): building it again", path,
                        table.shape)  # fmt: skip
        except (OSError, ValueError):
            pass
        log.warning("building routing's static vectors from MiniLM into %s (once per "
                    "machine, 15-30 s)", path)  # fmt: skip
        source = model or OnnxMiniLmEmbedder(threads=min(os.cpu_count() or 1, 4))
        table = distil(source.piece_vectors())
        _keep(table, path)
        return table


def _usable(table: np.ndarray, rows: int | None) -> bool:
    shaped = table.ndim == 2 and table.shape[1] == DIMS and rows in (None, table.shape[0])
    return bool(shaped and np.isfinite(table).all())


def _keep(table: np.ndarray, path: Path) -> None:
    """Write table to path atomically, readable by all (a Docker image builds it as root);
    on failure warn, remove the partial file and go on without it."""
    temp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as out:
            temp = out.name
            np.save(out, table)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        log.warning("routing's static vectors not kept (%s): each start builds them; set "
                    "FLIPSYNC_CACHE_DIR to a writable folder", exc)  # fmt: skip


class StaticEmbedder:
    """Unit-length prompt vectors: the mean of the prompt's word-piece rows (module doc)."""

    def __init__(self, table: np.ndarray | None = None) -> None:
        """Use table, else the cached one (built on first use)."""
        from tokenizers import BertWordPieceTokenizer

        from router.semantic.embedder import vocab_path

        with vocab_path() as path:
            self._tokenizer = BertWordPieceTokenizer(str(path), lowercase=True)
        pieces = self._tokenizer.get_vocab_size()
        self._table = load_table(rows=pieces) if table is None else table
        if self._table.ndim != 2 or self._table.shape[0] != pieces:
            raise ValueError(f"a static table needs {pieces} rows, got {self._table.shape}")

    @property
    def name(self) -> str:
        """The vectors' name."""
        return NAME

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return int(self._table.shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text (zeros for a text with no word piece)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        clipped = [t[:MAX_CHARS] for t in texts]
        for row, encoding in enumerate(
            self._tokenizer.encode_batch(clipped, add_special_tokens=False)
        ):
            if encoding.ids:
                mean = self._table[encoding.ids].mean(axis=0)
                out[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return out
