"""The batching policy, pure: which way a request goes, what may be packed together, and when
a window closes. No I/O and no clock of its own: the caller passes the time in.

"Same instructions" is decided from the request alone. Two requests are compatible when they
share the tenant (a packed prompt never mixes tenants' data), the routed model and provider,
the task type, the temperature, the output schema (name, schema and strictness), and every
message before the last one (the system prompt, few-shot turns). The last message is the
item's own part; any paragraphs its text shares with the other items of a window are hoisted
and sent once when the window is packed (see ``router.batching.prompt``). Only small,
text-only, structured requests that send no tools are packed: the split needs a schema to
validate each item, and a tool call has no place in a packed answer.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bus.messages import LlmRequest, Priority
from router.providers.messages import openai_messages
from router.tokens import count_messages_tokens
from router.validation import linear_schema

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class PackPolicy:
    """When requests are packed, and how long a window waits for company."""

    max_items: int = 8
    """A window closes when it holds this many requests; 1 or less turns packing off."""
    window_ms: int = 300
    """...or this long after its first request came, whichever is first."""
    max_input_tokens: int = 2000
    """A request is small enough to pack when its prompt is at most this many tokens..."""
    max_output_tokens: int = 1024
    """...and it asks for at most this many output tokens."""
    deadline_slack_ms: int = 2000
    """Time kept for the packed call itself: a window closes this long before the earliest
    deadline it holds, and a request with less time left is not packed at all."""
    bulk_window_ms: int = 1000
    """The window of bulk requests (window_ms is standard's; interactive ones never wait)."""

    @property
    def enabled(self) -> bool:
        """Whether packing can happen at all."""
        return self.max_items > 1

    def window_for(self, priority: Priority) -> int:
        """How long a window of requests of this priority waits for company (the latency
        lanes: 0 for interactive, window_ms for standard, bulk_window_ms for bulk)."""
        if priority is Priority.INTERACTIVE:
            return 0
        return self.bulk_window_ms if priority is Priority.BULK else self.window_ms


@dataclass(frozen=True, kw_only=True)
class BatchPolicy:
    """When bulk requests go through the provider's Batch API."""

    enabled: bool = True
    max_items: int = 1000
    """A batch window closes when it holds this many requests..."""
    window_ms: int = 1000
    """...or this long after its first request came."""
    turnaround_s: float = 24 * 3600.0
    """How long a batch may take, window included: a request whose deadline is sooner is not
    sent to one."""
    max_held: int = 128
    """Bulk requests one replica holds for batches at once; past it, bulk goes the normal way
    (each held request occupies one of the replica's router workers)."""


class Path(enum.StrEnum):
    """Which way the batch stage sends a request."""

    DIRECT = "direct"
    PACK = "pack"
    BATCH_API = "batch_api"


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The way a request goes, its packing key when packed, and why."""

    path: Path
    reason: str
    key: str = ""


def decide(
    request: LlmRequest,
    *,
    model: str,
    provider: str,
    now_ms: int,
    pack: PackPolicy,
    batch: BatchPolicy,
    batch_held: int = 0,
) -> Decision:
    """Send interactive requests straight on, bulk to the Batch API when its deadline can wait
    and the replica has room, and small structured ones to a packing window."""
    if request.priority is Priority.INTERACTIVE:
        return Decision(path=Path.DIRECT, reason="interactive requests are never held")
    if request.priority is Priority.BULK and batch.enabled:
        if request.tools:
            reason = "a turn that may call tools is not sent to a batch"
        elif not batch_fits(request, now_ms, batch):
            reason = f"deadline sooner than a batch's turnaround ({batch.turnaround_s:g}s)"
        elif batch_held >= batch.max_held:
            reason = f"this replica already holds {batch_held} requests for batches"
        else:
            return Decision(path=Path.BATCH_API, reason="bulk priority: provider Batch API")
        problem = unpackable(request, now_ms, pack)
        if problem:
            return Decision(path=Path.DIRECT, reason=f"{reason}; not packed: {problem}")
        return Decision(path=Path.PACK, reason=reason, key=pack_key(request, model, provider))
    problem = unpackable(request, now_ms, pack)
    if problem:
        return Decision(path=Path.DIRECT, reason=f"not packed: {problem}")
    return Decision(path=Path.PACK, reason="packable", key=pack_key(request, model, provider))


def batch_fits(request: LlmRequest, now_ms: int, batch: BatchPolicy) -> bool:
    """Whether the request's deadline (if any) leaves time for a whole batch turnaround."""
    if not request.deadline_ms:
        return True
    return request.deadline_ms - now_ms >= batch.turnaround_s * 1000


def unpackable(request: LlmRequest, now_ms: int, pack: PackPolicy) -> str:
    """Why the request cannot be packed, or "" when it can."""
    if not pack.enabled:
        return "packing is off"
    if request.priority is Priority.INTERACTIVE:
        return "interactive"
    if request.stream:  # a packed call answers whole: its text could not be relayed
        return "it is streamed"
    if request.output_schema is None:
        return "no output schema to validate its item against"
    if not linear_schema(request.output_schema.schema):  # packed items are checked on the loop
        return "its output schema branches or refers (checked off the event loop, alone)"
    if request.tools:
        return "it sends tools"
    last = request.messages[-1] if request.messages else None
    if last is None or last.role != "user":
        return "the last message is not the user's"
    if any(m.images() for m in request.messages):
        return "it carries images"
    if request.max_output_tokens > pack.max_output_tokens:
        return f"max_output_tokens over {pack.max_output_tokens}"
    if count_messages_tokens(openai_messages(request.messages)) > pack.max_input_tokens:
        return f"prompt over {pack.max_input_tokens} tokens"
    if request.deadline_ms and request.deadline_ms - now_ms < pack.deadline_slack_ms:
        return "too close to its deadline to wait for a window"
    return ""


def pack_key(request: LlmRequest, model: str, provider: str) -> str:
    """The compatibility key: requests with equal keys may share one packed call. The
    priority is part of it, so that each lane's window keeps its own length."""
    schema = request.output_schema
    shared = {
        "priority": request.priority.value,
        "tenant": request.tenant,
        "model": model,
        "provider": provider,
        "task_type": request.task_type,
        "temperature": request.temperature,
        "schema": None if schema is None else [schema.name, schema.schema, schema.strict],
        "before_last": openai_messages(request.messages[:-1]),
    }
    blob = json.dumps(shared, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(kw_only=True)
class Window(Generic[T]):
    """The items collected for one key, and when they must go: at max_items, at opened plus
    the window, or slack before the earliest deadline, whichever is first."""

    opened_ms: int
    window_ms: int
    max_items: int
    deadline_slack_ms: int = 0
    items: list[T] = field(default_factory=list)
    earliest_deadline_ms: int = 0
    """Earliest deadline among the items; 0 when none has one."""

    def add(self, item: T, deadline_ms: int = 0) -> bool:
        """Add an item; True when the window is now full and must close."""
        self.items.append(item)
        if deadline_ms and (
            not self.earliest_deadline_ms or deadline_ms < self.earliest_deadline_ms
        ):
            self.earliest_deadline_ms = deadline_ms
        return self.full

    @property
    def full(self) -> bool:
        """Whether the window holds max_items."""
        return len(self.items) >= self.max_items

    def closes_at_ms(self) -> int:
        """When the window must close, in the caller's clock."""
        close = self.opened_ms + self.window_ms
        if self.earliest_deadline_ms:
            close = min(close, self.earliest_deadline_ms - self.deadline_slack_ms)
        return close

    def due(self, now_ms: int) -> bool:
        """Whether the window must close now."""
        return self.full or now_ms >= self.closes_at_ms()
