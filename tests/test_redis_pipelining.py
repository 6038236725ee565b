"""Auto-pipelining (bus.redis_pipelining) on a real redis-server: commands of one turn share a
trip, each keeps its own reply or error, blocking commands go alone, a failed trip fails its
commands instead of hanging them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from bus.embedded import EmbeddedRedis
from bus.redis_client import make_redis
from bus.redis_pipelining import AutoPipelinedRedis, alone, blocking

INCR_LUA = "return redis.call('INCR', KEYS[1])"
FAIL_LUA = "return redis.error_reply('no such thing: ' .. KEYS[1])"


@pytest.fixture
async def client(redis_server: EmbeddedRedis) -> AsyncIterator[AutoPipelinedRedis]:
    """The production client (make_redis) of the session's Redis, flushed."""
    made = make_redis(redis_server.url)
    assert isinstance(made, AutoPipelinedRedis)
    await made.flushall()
    yield made
    await made.aclose()


async def test_concurrent_commands_share_trips_and_keep_their_order(
    client: AutoPipelinedRedis,
) -> None:
    """50 coroutines, each INCRing its own key 20 times through a script: every reply is the
    coroutine's own next count, in order, over far fewer pipelines than commands."""
    incr = client.register_script(INCR_LUA)

    async def count(worker: int) -> list[int]:
        return [int(await incr(keys=[f"n:{worker}"])) for _ in range(20)]

    replies = await asyncio.gather(*(count(w) for w in range(50)))
    assert all(r == list(range(1, 21)) for r in replies)
    assert client.commands_pipelined >= 900  # the first turns may go one by one
    assert client.pipelines_sent <= client.commands_pipelined / 10


async def test_an_error_fails_only_its_own_command(client: AutoPipelinedRedis) -> None:
    """A script error in the middle of a batch reaches its caller; the others succeed."""
    fail = client.register_script(FAIL_LUA)
    await client.set("a", "1")
    results = await asyncio.gather(
        client.get("a"), fail(keys=["x"]), client.incr("b"), return_exceptions=True
    )
    assert results[0] == b"1"
    assert isinstance(results[1], ResponseError) and "no such thing: x" in str(results[1])
    assert results[2] == 1


async def test_flushed_scripts_load_themselves_again(client: AutoPipelinedRedis) -> None:
    """NOSCRIPT inside a batch: each script call loads its script and retries."""
    incr = client.register_script(INCR_LUA)
    assert await incr(keys=["s"]) == 1
    await client.script_flush()
    assert sorted(await asyncio.gather(*(incr(keys=["s"]) for _ in range(10)))) == list(
        range(2, 12)
    )


async def test_a_cancelled_caller_leaves_the_others_answered(client: AutoPipelinedRedis) -> None:
    """One caller of a turn gives up: its command still runs (as a sent command would), the
    others of the same trip get their replies."""
    callers = [asyncio.ensure_future(client.incr("shared")) for _ in range(10)]
    await asyncio.sleep(0)  # every caller is queued in this turn's pipeline
    callers[3].cancel()
    done = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    answered = [r for n, r in enumerate(done) if n != 3]
    assert len(set(answered)) == 9 and set(answered) <= set(range(1, 11))
    assert await client.get("shared") == b"10"


async def test_a_blocking_command_does_not_hold_the_batch(client: AutoPipelinedRedis) -> None:
    """BLPOP waits on its own connection; GETs issued meanwhile are answered."""
    popped = asyncio.ensure_future(client.blpop(["queue"], timeout=10))
    await asyncio.sleep(0.05)
    await client.set("k", "v")
    assert await client.get("k") == b"v"
    assert not popped.done()
    await client.lpush("queue", "item")
    assert await asyncio.wait_for(popped, 5) == (b"queue", b"item")
    assert blocking(("XREAD", "BLOCK", 100, "STREAMS", "s", "0"))
    assert not blocking(("XREAD", "COUNT", 10, "STREAMS", "s", "0"))


async def test_a_failed_trip_fails_its_commands_and_the_client_recovers() -> None:
    """With the server gone every command of the batch raises (none hangs); once it is back
    on the same port the same client works again."""
    server = EmbeddedRedis()
    await server.start()
    client = make_redis(server.url)
    assert isinstance(client, AutoPipelinedRedis)
    try:
        await client.set("k", "1")
        await server.stop()
        results = await asyncio.wait_for(
            asyncio.gather(*(client.get("k") for _ in range(20)), return_exceptions=True), 30
        )
        assert all(isinstance(r, RedisConnectionError) for r in results), results
        await server.start()
        assert await client.incr("k") == 1  # an empty server: nothing persisted
    finally:
        await client.aclose()
        await server.stop()


async def test_close_waits_for_commands_under_way(redis_server: EmbeddedRedis) -> None:
    """Commands queued when aclose is called are still sent and answered."""
    client = make_redis(redis_server.url)
    pending = [asyncio.ensure_future(client.incr("closing")) for _ in range(5)]
    await asyncio.sleep(0)
    await client.aclose()
    assert sorted(await asyncio.gather(*pending)) == [1, 2, 3, 4, 5]
    check = aioredis.Redis.from_url(redis_server.url)
    await check.delete("closing")
    await check.aclose()


async def test_connection_state_commands_go_alone(client: AutoPipelinedRedis) -> None:
    """WATCH among a turn's commands (redis-py's pipeline would not even queue it) is sent on
    its own: every caller gets its own reply; a binary stream key is no decoding error."""
    await client.mset({"a": "1", "b": "2"})
    replies = await asyncio.gather(
        client.get("a"), client.execute_command("WATCH", "a"), client.get("b")
    )
    assert list(replies) == [b"1", True, b"2"]
    assert alone(("WATCH", "a")) and alone(("CLIENT REPLY", "OFF"))
    assert not blocking(("XREAD", "STREAMS", b"\xff\xfe", "0")) and not alone(("GET", "k"))
