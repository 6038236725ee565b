"""A caller's JSON schema is data: no fetch of its $ref, no call when it is broken, a 400."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from bus.errors import WireError
from bus.llm_client import LlmClient
from bus.messages import DeadLetter, ErrorCode, OutputSchema
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from router import validation
from router.schema_budget import answer_steps
from router.validation import (
    INLINE_ANSWER_CHARS,
    ON_LOOP_STEPS,
    check_request_schema,
    linear_schema,
    parse_answer,
    parse_answer_off_loop,
    schema_problem,
)
from tests.helpers import make_request

TENANT = f"sch{uuid.uuid4().hex[:8]}"
KEY = "sk-test-" + uuid.uuid4().hex


class Listener:
    """A real TCP server on a free loopback port that counts the connections it receives."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        body = b'{"type": "object", "secret": "internal document"}'
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    """A local listener standing in for an internal service a schema might point at."""
    spy = Listener()
    spy.server = await asyncio.start_server(spy._accept, "127.0.0.1", 0)
    yield spy
    spy.server.close()
    await spy.server.wait_closed()


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Provider, router, ledger and API on embedded servers."""
    settings = Settings(
        sim_latency_ms=0,
        provider_max_retries=0,
        api_port=0,
        api_keys={KEY: TENANT},
        extra_agents=frozenset({"listing"}),
    )
    services = {Service.PROVIDER, Service.ROUTER, Service.LEDGER, Service.API}
    running = await start_stack(settings, services)
    yield running
    await running.stop()


BROKEN: list[dict[str, Any]] = [
    {"type": 5},
    {"$ref": "#"},
    {"allOf": [{"$ref": "#"}]},
    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"$ref": "#/$defs/missing"},
    {"$ref": "file:///etc/passwd"},
    {"$ref": "other.json"},
    {"$schema": "http://example.com/my-dialect", "type": "object"},
    {"$schema": {"not": "a string"}},
    {"type": "object", "properties": {"x": {"pattern": "("}}},
]


@pytest.mark.parametrize("schema", BROKEN, ids=[str(i) for i in range(len(BROKEN))])
def test_broken_schemas_are_refused_with_a_reason(schema: dict[str, Any]) -> None:
    assert schema_problem(schema)


def test_deep_and_large_schemas_are_refused() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    assert "deeper" in schema_problem(deep)
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(6000)}}
    assert "more than" in schema_problem(wide)


def test_good_schema_with_local_refs_passes_and_validates() -> None:
    schema: dict[str, object] = {
        "$defs": {"title": {"type": "string", "minLength": 3}},
        "type": "object",
        "required": ["title"],
        "properties": {"title": {"$ref": "#/$defs/title"}},
        "enum": [{"$ref": "http://data-not-a-reference"}, {"title": "abc"}],
    }
    assert schema_problem(schema) == ""
    assert parse_answer('{"title": "abc"}', schema) == ({"title": "abc"}, "")
    assert parse_answer('{"title": "a"}', schema)[1]


async def test_remote_ref_is_never_fetched(stack: Stack, listener: Listener) -> None:
    assert stack.sim is not None
    calls = (await stack.sim.stats()).calls
    for url in (f"http://127.0.0.1:{listener.port}/s.json", f"//127.0.0.1:{listener.port}/x"):
        schema = OutputSchema(
            name="s", schema={"type": "object", "properties": {"a": {"$ref": url}}}
        )
        request = make_request(tenant=TENANT, agent="listing", schema=schema)
        result = await LlmClient(stack.broker).request(request, timeout_s=10)
        assert result.error_code is ErrorCode.MALFORMED, result.reason
        assert "internal document" not in result.reason
    assert listener.connections == 0
    assert (await stack.sim.stats()).calls == calls  # refused before any provider call


async def test_broken_schemas_get_malformed_before_any_call(stack: Stack) -> None:
    assert stack.sim is not None
    calls = (await stack.sim.stats()).calls
    broken: list[dict[str, object]] = [{"type": 5}, {"$ref": "#"}]
    for schema in broken:
        request = make_request(
            tenant=TENANT, agent="listing", schema=OutputSchema(name="s", schema=schema)
        )
        result = await LlmClient(stack.broker).request(request, timeout_s=10)
        assert result.error_code is ErrorCode.MALFORMED, result.reason
        assert result.cost_micro_usd == 0
    assert (await stack.sim.stats()).calls == calls


async def test_api_answers_400_for_a_broken_schema(stack: Stack) -> None:
    assert stack.api is not None and stack.sim is not None
    calls = (await stack.sim.stats()).calls
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for schema in ({"type": 5}, {"$ref": "#"}, {"$ref": "http://127.0.0.1:9/x"}):
            body = {
                "model": "flipsync-auto",
                "messages": [{"role": "user", "content": "Write a title for a teal mug."}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "t", "schema": schema},
                },
            }
            async with http.post(f"{stack.api.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 400, await resp.text()
                error = (await resp.json())["error"]
                assert error["code"] == "malformed"
                assert "Traceback" not in error["message"]
    assert (await stack.sim.stats()).calls == calls


class Tarpit:
    """A real TCP server that accepts connections and never answers: what froze the routers
    when a schema's remote $ref was fetched with a blocking read on the event loop."""

    def __init__(self) -> None:
        self.connections = 0
        self.held: list[asyncio.StreamWriter] = []

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Count the connection and hold it open without a byte."""
        self.connections += 1
        self.held.append(writer)


async def test_a_poison_schema_never_freezes_another_tenants_request(stack: Stack) -> None:
    tarpit = Tarpit()
    server = await asyncio.start_server(tarpit.accept, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        poison = OutputSchema(
            name="s", schema={"$ref": f"http://127.0.0.1:{port}/never-answers.json"}
        )
        client = LlmClient(stack.broker)
        poisoned = [
            asyncio.create_task(
                client.request(
                    make_request(tenant=TENANT, agent="listing", schema=poison), timeout_s=20
                )
            )
            for _ in range(5)
        ]
        other = f"calm{uuid.uuid4().hex[:6]}"
        answered = await asyncio.gather(
            *(
                client.request(make_request(tenant=other, agent="listing"), timeout_s=20)
                for _ in range(5)
            )
        )
        assert all(r.ok for r in answered), [r.reason for r in answered]
        for result in await asyncio.gather(*poisoned):
            assert result.error_code is ErrorCode.MALFORMED, result.reason
        assert tarpit.connections == 0  # nothing was fetched, so nothing could block
    finally:
        for writer in tarpit.held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_schema_checked_before_gets_its_verdict_without_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good: dict[str, object] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    bad: dict[str, object] = {"type": "object", "properties": {"n": {"type": 7}}}
    good["x-id"] = bad["x-id"] = uuid.uuid4().hex  # schemas no other test checked
    schemas = [OutputSchema(name="s", schema=s) for s in (good, bad)]
    await check_request_schema(msgspec.structs.replace(make_request(), output_schema=schemas[0]))
    with pytest.raises(WireError) as first:
        await check_request_schema(
            msgspec.structs.replace(make_request(), output_schema=schemas[1])
        )

    def no_check(*args: object) -> str:
        raise AssertionError("a known schema was checked again")

    monkeypatch.setattr(validation, "schema_problem", no_check)
    await check_request_schema(msgspec.structs.replace(make_request(), output_schema=schemas[0]))
    with pytest.raises(WireError) as again:
        await check_request_schema(
            msgspec.structs.replace(make_request(), output_schema=schemas[1])
        )
    assert again.value.reason == first.value.reason and "invalid" in again.value.reason


def count_threads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """asyncio.to_thread, counted: the arguments of each call made from now on."""
    threads: list[object] = []
    real = asyncio.to_thread

    async def counted(fn: Any, *args: Any) -> Any:
        threads.append(args)
        return await real(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    return threads


async def test_short_answers_to_a_linear_schema_seen_before_are_checked_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker thread's hop costs more than checking a short answer against a schema of
    linear-time keywords; a schema that branches or refers, or a long answer, still goes
    to a worker thread (such a check can take seconds)."""
    tag = uuid.uuid4().hex  # schemas no other test checked
    linear: dict[str, object] = {
        "type": "object",
        "required": ["a"],
        "properties": {"a": {"type": "string", "maxLength": 3}},
        "x-id": tag,
    }
    branching: dict[str, object] = {
        "anyOf": [{"type": "string"}, {"type": "integer"}],
        "x-id": tag,
    }
    threads = count_threads(monkeypatch)
    assert await parse_answer_off_loop('{"a": "x"}', linear) == ({"a": "x"}, "")
    assert len(threads) == 1  # first seen: checked off the loop, and its check kept
    assert await parse_answer_off_loop('{"a": "y"}', linear) == ({"a": "y"}, "")
    parsed, problem = await parse_answer_off_loop('{"a": "long"}', linear)
    assert parsed is None and "does not match the schema at a" in problem
    assert len(threads) == 1  # on the loop, invalid answers still refused
    long = '{"a": "x", "pad": "' + "p" * INLINE_ANSWER_CHARS + '"}'
    assert (await parse_answer_off_loop(long, linear))[1] == ""
    assert len(threads) == 2  # a long answer: off the loop
    for answer in ('"s"', "3", '"t"'):
        assert (await parse_answer_off_loop(answer, branching))[1] == ""
    assert len(threads) == 5  # a branching schema: always off the loop
    assert linear_schema(linear) and not linear_schema(branching)
    assert not linear_schema({"type": "array", "items": {"$ref": "#"}})
    assert not linear_schema({"properties": {str(i): {} for i in range(300)}})  # too many


async def test_a_check_that_breaks_ends_in_an_error_result_and_a_dead_letter(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, an exception other than a refusal left the intake checks, the request was
    redelivered max_deliver times and then dropped: no result, no dead letter."""
    import router.service

    async def broken(request: object) -> None:
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(router.service, "check_request", broken)
    request = make_request(tenant=TENANT, agent="listing")
    dead = await stack.broker.connection.subscribe("dlq.router")
    try:
        result = await LlmClient(stack.broker).request(request, timeout_s=10)
        letter = await dead.next_msg(timeout=5)
    finally:
        await dead.unsubscribe()
    assert result.error_code is ErrorCode.INTERNAL
    assert "OverflowError: int too large" in result.reason
    kept = msgspec.json.decode(letter.data, type=DeadLetter)
    assert kept.error_code is ErrorCode.INTERNAL and request.id.encode() in kept.payload


def test_numbers_too_large_for_a_float_are_a_refusal_not_an_exception() -> None:
    assert "OverflowError" in schema_problem({"multipleOf": 10**400})
    parsed, problem = parse_answer("1" + "0" * 4000, {"type": "number", "multipleOf": 0.01})
    assert parsed is None and "could not be checked" in problem


async def test_an_answer_that_needs_more_than_the_loops_steps_goes_to_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole budget of a 4 KiB answer took 112 ms on the event loop (a required list of
    60 names against 1,365 empty objects); the loop gives a check ON_LOOP_STEPS, then a
    worker thread carries on with the whole budget."""
    names = [f"n{i}" for i in range(60)]
    schema: dict[str, object] = {
        "type": "array",
        "items": {"type": "object", "required": names},
        "x-id": uuid.uuid4().hex,
    }
    assert linear_schema(schema)
    await parse_answer_off_loop("[]", schema)  # seen: its check is kept
    threads = count_threads(monkeypatch)
    assert await parse_answer_off_loop("[{}]", schema) != (None, "")  # a missing name
    assert threads == []  # a few steps: on the loop
    answer = "[" + ",".join(["{}"] * 1365) + "]"
    parsed, problem = await parse_answer_off_loop(answer, schema)
    assert len(threads) == 1 and answer_steps(answer) > ON_LOOP_STEPS
    assert parsed is None and f"within {answer_steps(answer):,} steps" in problem


def blocked_checks(
    monkeypatch: pytest.MonkeyPatch, verdict: str
) -> tuple[list[object], threading.Event]:
    """Schema checks that wait for the returned event (each one's schema listed as it
    starts), then give verdict; a request waits 0.05 s for one."""
    release = threading.Event()
    checks: list[object] = []

    def slow_check(value: object) -> str:
        checks.append(value)
        release.wait(timeout=30)  # a hang guard: the test releases it
        return verdict

    monkeypatch.setattr(validation, "schema_problem", slow_check)
    monkeypatch.setattr(validation, "CHECK_TIMEOUT_S", 0.05)
    return checks, release


async def test_a_slow_schema_is_checked_once_however_often_it_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: a schema whose check outlasted CHECK_TIMEOUT_S was checked again for
    every request that sent it, each check running on after its request stopped waiting (five
    resends of a 59 KB schema took 2.5 s of CPU). Requests sending it meanwhile now share the
    check under way, and its verdict is kept when it ends."""
    schema: dict[str, object] = {"type": "object", "x-id": uuid.uuid4().hex}
    request = msgspec.structs.replace(
        make_request(), output_schema=OutputSchema(name="s", schema=schema)
    )
    checks, release = blocked_checks(monkeypatch, "the verdict of the slow check")
    try:
        refused = await asyncio.gather(
            *(check_request_schema(request) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, WireError) and "took over" in r.reason for r in refused)
        assert len(checks) == 1  # one check for five requests
    finally:
        release.set()
    for _ in range(300):  # the check ends on its thread; its verdict is kept then
        if not validation._CHECKING:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(WireError) as kept:
        await check_request_schema(request)
    assert kept.value.reason == "the verdict of the slow check"
    assert len(checks) == 1


async def test_a_burst_of_slow_schemas_leaves_no_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: checks nobody waited for any more stayed queued, so a burst of new
    slow schemas made every new schema after it wait its turn and be refused for time. A
    check still queued when its last request stops waiting is dropped now; only those the
    threads had started run on."""
    checks, release = blocked_checks(monkeypatch, "")
    burst = [
        msgspec.structs.replace(make_request(), output_schema=OutputSchema(
            name="s", schema={"type": "object", "x-id": uuid.uuid4().hex}))
        for _ in range(12)
    ]  # fmt: skip
    try:
        refused = await asyncio.gather(
            *(check_request_schema(r) for r in burst), return_exceptions=True
        )
        assert all(isinstance(r, WireError) and "took over" in r.reason for r in refused)
        queued = [c for c in validation._CHECKING.values() if not c.future.running()]
        assert queued == []
        assert len(checks) <= validation.SCHEMA_CHECK_THREADS
    finally:
        release.set()
