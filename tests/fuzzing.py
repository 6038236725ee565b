"""A deterministic fuzzer of every HTTP endpoint and of the llm.request subject.

Hypothesis strategies draw the inputs (a fixed seed, no shrinking, a bounded number of
examples); they are then sent to a running stack. What counts:
- HTTP: every status; a 5xx is a finding (its path and body are kept), as is a body that
  leaks internal text (a traceback, a file path).
- NATS: every message published on llm.request.<tenant>.<agent> must end in a result for
  its id (when its id can be read) or a dead letter on dlq.router holding its payload.
Used by tests/test_fuzz.py (small) and bench/chaos.py (large).
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from bus import subjects
from bus.codec import decode
from bus.messages import DeadLetter
from flipsync.stack import Stack

LEAKS = ("Traceback", 'File "', "site-packages", "/work/", "/usr/lib")
AGENT = "listing"


@dataclass(frozen=True)
class HttpCase:
    """One HTTP request to send."""

    method: str
    path: str
    body: bytes | None = None
    content_type: str = "application/json"
    multipart: tuple[tuple[str, str | bytes], ...] | None = None


@dataclass(kw_only=True)
class FuzzReport:
    """What a fuzz run saw."""

    http_inputs: int = 0
    nats_inputs: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    five_xx: list[str] = field(default_factory=list)
    """Each 5xx response: method, path, status and the start of its body."""
    leaks: list[str] = field(default_factory=list)
    """Responses whose body shows internal text."""
    closed_early: int = 0
    """Requests the server answered and closed before their body was all sent."""
    untraced: list[bytes] = field(default_factory=list)
    """Published messages that got neither a result nor a dead letter."""

    @property
    def inputs(self) -> int:
        """Every input sent, HTTP and NATS."""
        return self.http_inputs + self.nats_inputs


def draw(strategy: st.SearchStrategy[Any], examples: int, at: int) -> list[Any]:
    """examples values of strategy, the same ones for the same seed `at` every run."""
    out: list[Any] = []

    @seed(at)
    @settings(max_examples=examples, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out[:examples]


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_hostile_fragments = st.sampled_from(
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'"\\ud800"',
        b'"\\udfff\\ud800"',
        b"\xff\xfe",
        b"1e999999",
        b"-" + b"9" * 5000,
        b"",
        b"null",
        b'"' + b"x" * 70000 + b'"',
    ]
)


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 40))


_schemas = (
    st.sampled_from(
        [
            {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
            {"type": 5},
            {"$ref": "#"},
            {"$ref": "http://127.0.0.1:9/x"},
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/nope"}}},
        ]
    )
    | json_values
)
_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "x"]) | _scalars,
         "content": st.text(max_size=60) | json_values},
    ),
    max_size=3,
)  # fmt: skip


def _completion_body() -> st.SearchStrategy[bytes]:
    shaped = st.fixed_dictionaries(
        {"model": st.sampled_from(["flipsync-auto", "gpt-4o-mini", ""]) | _scalars,
         "messages": _messages | json_values},
        optional={
            "max_tokens": st.integers(-200, 5000) | _scalars,
            "temperature": st.floats(-3, 3) | _scalars,
            "response_format": st.fixed_dictionaries(
                {"type": st.just("json_schema"),
                 "json_schema": st.fixed_dictionaries({"name": st.just("s"), "schema": _schemas})}
            ) | json_values,
            "tools": json_values,
            "n": st.integers(-2, 3),
            "stream": st.booleans() | _scalars,
            "user": st.text(max_size=20) | _scalars,
        },
    )  # fmt: skip
    return shaped.map(lambda d: json.dumps(d).encode()) | _hostile_fragments


def http_cases(tenant: str) -> st.SearchStrategy[HttpCase]:
    """Requests to every HTTP endpoint, well-formed and not."""
    names = st.sampled_from([tenant, "other", "a b", "x" * 80, "%00", ".."]) | st.text(
        min_size=1, max_size=12
    )
    path_text = names.map(lambda n: quote(n, safe=""))
    cost = st.sampled_from(["spend", "timeseries", "budgets", "forecast", "anomalies",
                            "recommendations"])  # fmt: skip
    query = st.dictionaries(
        st.sampled_from(["tenant", "agent", "model", "start", "end", "x"]),
        st.sampled_from(["2026-01-01", "2026-13-45", "", tenant, "gpt-4o-mini"])
        | st.text(max_size=10),
        max_size=3,
    ).map(lambda q: "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in q.items()))  # fmt: skip
    chat_body = st.fixed_dictionaries(
        {}, optional={"question": _scalars, "history": json_values | st.lists(
            st.fixed_dictionaries({"role": _scalars, "text": _scalars}), max_size=3)},
    ).map(lambda d: json.dumps(d).encode()) | _hostile_fragments  # fmt: skip
    photos = st.sampled_from([_png(4, 4), _png(20000, 20000), b"GIF89a", b""]) | st.binary(
        max_size=64
    )
    attributes = json_values.map(json.dumps) | _hostile_fragments.map(
        lambda b: b.decode("utf-8", "replace")
    )
    upload = st.builds(
        lambda t, pid, attrs, photo: HttpCase(
            "POST", f"/api/products?tenant={t}", multipart=(
                ("product_id", pid), ("attributes", attrs), ("photos", photo))),
        path_text, st.text(max_size=12), attributes, photos,
    )  # fmt: skip
    return st.one_of(
        _completion_body().map(lambda b: HttpCase("POST", "/v1/chat/completions", b)),
        st.builds(lambda t, b: HttpCase("POST", f"/api/chat/{t}", b), path_text, chat_body),
        upload,
        st.builds(lambda t, w: HttpCase("GET", f"/api/products/{t}/{w}"), path_text, path_text),
        st.builds(lambda c, q: HttpCase("GET", f"/api/cost/{c}?{q}"), cost, query),
        path_text.map(lambda m: HttpCase("GET", f"/v1/models/{m}")),
        st.sampled_from(
            [HttpCase("GET", p) for p in ("/v1/models", "/healthz", "/asyncapi.json", "/")]
        ),
    )


@dataclass(frozen=True)
class NatsCase:
    """One message to publish on a request subject."""

    subject: str
    body: bytes


def nats_cases(tenant: str) -> st.SearchStrategy[NatsCase]:
    """Request messages, mostly request-shaped with hostile fields, some plain garbage."""
    fields = st.fixed_dictionaries(
        {"messages": _messages | json_values},
        optional={
            "tenant": st.sampled_from([tenant, "other"]) | _scalars,
            "agent": st.sampled_from([AGENT, "nobody"]) | _scalars,
            "output_schema": st.fixed_dictionaries({"name": st.just("s"), "schema": _schemas})
            | json_values,
            "max_output_tokens": st.integers(-100, 2000) | _scalars,
            "tools": json_values,
            "temperature": st.floats(allow_nan=False) | _scalars,
            "priority": st.sampled_from(["standard", "bulk", "x"]),
            "deadline_ms": st.integers(-5, 2**40),
            "tags": json_values,
        },
    )
    ids = st.sampled_from(["fresh", "newline", "none", "weird"])

    def shaped(raw: dict[str, Any], kind: str, agent: str) -> NatsCase:
        raw = dict(raw)
        raw.setdefault("tenant", tenant)
        raw.setdefault("agent", agent)
        if kind == "fresh":
            raw["id"] = uuid.uuid4().hex
        elif kind == "newline":
            raw["id"] = uuid.uuid4().hex + "\n"
        elif kind == "weird":
            raw["id"] = "a.b*>"
        return NatsCase(subjects.llm_request(tenant, agent), json.dumps(raw).encode())

    agents = st.sampled_from([AGENT, "nobody"])
    garbage = st.builds(
        lambda b, a: NatsCase(subjects.llm_request(tenant, a), b),
        _hostile_fragments | st.binary(max_size=40),
        agents,
    )
    return st.builds(shaped, fields, ids, agents) | garbage


async def fuzz_http(stack: Stack, key: str, cases: list[HttpCase], report: FuzzReport) -> None:
    """Send every case to the stack's API, counting statuses, 5xx and leaks."""
    assert stack.api is not None
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(stack.api.url, headers=headers, timeout=timeout) as http:
        for case in cases:
            report.http_inputs += 1
            data: Any = None
            if case.multipart is not None:
                data = aiohttp.FormData()
                for name, value in case.multipart:
                    if isinstance(value, bytes):
                        data.add_field(name, io.BytesIO(value), filename="p.png")
                    else:
                        data.add_field(name, value)
            elif case.body is not None:
                data = io.BytesIO(case.body)
            kind = {"Content-Type": case.content_type} if case.body is not None else {}
            try:
                async with http.request(case.method, case.path, data=data, headers=kind) as resp:
                    text = (await resp.read()).decode("utf-8", "replace")
                    status = resp.status
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                report.closed_early += 1  # answered (403, 413) before the body was all sent
                continue
            report.statuses[status] += 1
            seen = f"{case.method} {case.path[:120]} {status} {text[:200]}"
            if status >= 500:
                report.five_xx.append(seen)
            if any(leak in text for leak in LEAKS) and case.path != "/asyncapi.json":
                report.leaks.append(seen)


async def fuzz_nats(stack: Stack, cases: list[NatsCase], report: FuzzReport) -> None:
    """Publish every case on its request subject; count those left with no trace."""
    nc = stack.broker.connection
    js = nc.jetstream()
    letters: list[bytes] = []

    async def on_letter(msg: Msg) -> None:
        letters.append(decode(msg.data, DeadLetter).payload)

    dlq = await nc.subscribe(subjects.dead_letter("router"), cb=on_letter)
    try:
        for case in cases:
            report.nats_inputs += 1
            await js.publish(case.subject, case.body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
        await _router_idle(stack)
        for _ in range(3):
            await nc.flush()
    finally:
        await dlq.unsubscribe()
    lettered = set(letters)
    for case in cases:
        if case.body in lettered or await _answered(stack, case):
            continue
        report.untraced.append(case.body[:200])


async def _answered(stack: Stack, case: NatsCase) -> bool:
    """Whether the result stream holds a result for the case's id, on its sender's subject."""
    try:
        raw = msgspec.json.decode(case.body)
    except (msgspec.DecodeError, RecursionError):
        return False
    request_id = raw.get("id") if isinstance(raw, dict) else None
    sender = subjects.request_sender(case.subject)
    if not isinstance(request_id, str) or sender is None:
        return False
    try:
        subject = subjects.llm_result(sender[0], sender[1], request_id)
    except ValueError:
        return False
    js = stack.broker.connection.jetstream()
    try:
        await js.get_last_msg(subjects.STREAM_RESULTS, subject, direct=True)
    except NotFoundError:
        return False
    return True


async def _router_idle(stack: Stack, timeout_s: float = 300.0) -> None:
    js = stack.broker.connection.jetstream()
    async with asyncio.timeout(timeout_s):
        while True:
            info = await js.consumer_info(subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER)
            if not info.num_pending and not info.num_ack_pending:
                return
            await asyncio.sleep(0.1)
