"""The simulator's run-time state: counters, fault and latency draws, the prompt cache."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from dataclasses import dataclass, field

from simulator.cache import PromptCache
from simulator.config import FaultKind, Faults, SimConfig


@dataclass(kw_only=True)
class SimStats:
    """What the simulator has answered since start (or the last reset)."""

    requests: int = 0
    """Chat completion requests received, bad ones included."""
    calls: int = 0
    """Completions produced (HTTP 200, malformed_json and schema_invalid included)."""
    by_model: Counter[str] = field(default_factory=Counter)
    """Completions per model."""
    faults: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(FaultKind, 0)))
    """Injected faults per kind."""
    prompt_tokens: int = 0
    """Prompt tokens of the completions, cached ones included."""
    cached_tokens: int = 0
    """The part of prompt_tokens served from the prompt cache."""
    completion_tokens: int = 0
    """Tokens of the produced completions."""
    batches: int = 0
    """Batches created through /v1/batches."""
    batch_calls: int = 0
    """Completions produced as lines of a batch (not counted in calls)."""
    streams_open: int = 0
    """Streamed answers still being written (their last chunk not yet sent)."""
    tokens_by_model: dict[str, list[int]] = field(default_factory=dict)
    """Per model, [prompt, cached, completion] tokens of its completions: what a bill needs
    when several models answered (a bound at the dearest model's price is no bill)."""

    def to_json(self) -> dict[str, object]:
        """The stats as GET /_sim/stats answers them."""
        return {
            "requests": self.requests,
            "calls": self.calls,
            "by_model": dict(self.by_model),
            "faults": {str(kind): n for kind, n in self.faults.items()},
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "batches": self.batches,
            "batch_calls": self.batch_calls,
            "streams_open": self.streams_open,
            "tokens_by_model": {m: list(t) for m, t in self.tokens_by_model.items()},
        }

    def copy(self) -> SimStats:
        """A snapshot that later calls do not change."""
        return dataclasses.replace(
            self,
            by_model=Counter(self.by_model),
            faults=Counter(self.faults),
            tokens_by_model={m: list(t) for m, t in self.tokens_by_model.items()},
        )


class SimState:
    """Mutable state of one simulator; fault and latency draws come from seeded RNGs."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.faults = config.faults
        self.stats = SimStats()
        self.cache = PromptCache(config.cache_max_prefixes)
        self.stream_gate: asyncio.Event | None = None
        """When set by a test, a streamed answer pauses after its first text chunk until the
        event is set: the stream is then provably still open when that chunk is read."""
        # Two streams, so that turning latency on does not move which calls fail.
        self._fault_rng = random.Random(config.seed)
        self._latency_rng = random.Random(config.seed + 1)

    def reset(self) -> None:
        """Back to the state right after start: zero stats, empty cache, RNGs reseeded."""
        self.stats = SimStats()
        self.cache.clear()
        self._fault_rng.seed(self.config.seed)
        self._latency_rng.seed(self.config.seed + 1)

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault rates and restart their RNG, so the new run is reproducible."""
        self.faults = faults
        self._fault_rng.seed(self.config.seed)

    def draw_fault(self) -> FaultKind | None:
        """The fault of the next call, if any: one uniform draw per call, whatever the rates."""
        draw = self._fault_rng.random()
        edge = 0.0
        for kind in FaultKind:
            edge += self.faults.rate(kind)
            if draw < edge:
                return kind
        return None

    def latency_s(self) -> float:
        """Seconds before the first token: the mean plus seeded uniform jitter, never negative."""
        mean, jitter = self.config.latency_ms, self.config.latency_jitter_ms
        if jitter:
            mean += self._latency_rng.uniform(-jitter, jitter)
        return max(mean, 0.0) / 1000

    def decode_s(self, completion_tokens: int) -> float:
        """Seconds to produce completion_tokens at the configured per-token speed."""
        return self.config.per_output_token_ms * completion_tokens / 1000

    def stream_s(self, tokens: int) -> float:
        """Seconds before a streamed chunk of tokens: the decoding speed, else the stream pace."""
        per_token = self.config.per_output_token_ms or self.config.stream_token_ms
        return per_token * tokens / 1000

    def record(
        self, model: str, prompt: int, cached: int, completion: int, *, via_batch: bool = False
    ) -> None:
        """Count one produced completion (a batch line counts in batch_calls, not calls)."""
        if via_batch:
            self.stats.batch_calls += 1
        else:
            self.stats.calls += 1
        self.stats.by_model[model] += 1
        self.stats.prompt_tokens += prompt
        self.stats.cached_tokens += cached
        self.stats.completion_tokens += completion
        tokens = self.stats.tokens_by_model.setdefault(model, [0, 0, 0])
        tokens[0] += prompt
        tokens[1] += cached
        tokens[2] += completion
