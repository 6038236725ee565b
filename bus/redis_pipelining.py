"""Auto-pipelining: the Redis commands a process issues in one event-loop turn go as one
pipeline, one write and one read on one connection, instead of one round trip each.

A router works on hundreds of requests at once, and each request's stages make their Redis
calls one after another (cache lookup, dedup claim, budget reservation, settle...). Redis
answers a pipeline's commands in order, each exactly as if sent alone, so the requests' calls
of the same turn can share the trip: fewer connection checkouts, writes, reads and wake-ups on
both sides (ioredis and node-redis do the same; redis-py has no such option). A coroutine
that awaits one command before sending the next sees the same order as before, and commands of
different coroutines were never ordered with each other. Each command keeps its own result
or error (a NOSCRIPT error still makes its script load itself and retry).

Not pipelined: blocking commands (a blocked command would hold the whole batch), commands
that change the connection's state or do not give one reply each (ALONE), and clients of a
Redis Cluster (bus.redis_client builds those without it).

Known difference from the plain client: an error that redis-py raises while reading one reply
and that is not a ResponseError (an error reply starting LOADING, NOAUTH or WRONGPASS, which
it raises as a ConnectionError; a response callback that raises; a decoding error with
decode_responses) fails every command of that trip, though the others ran. FlipSync's
scripts build no such replies and its clients do not decode; its clients also make no
retries, so a failed trip is never sent twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

BLOCKING = frozenset(
    {
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BLMOVE",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "WAIT",
        "WAITAOF",
        "MONITOR",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
    }
)
"""Commands that may wait on the server; sent alone."""
ALONE = frozenset(
    {
        "WATCH",
        "UNWATCH",
        "MULTI",
        "EXEC",
        "DISCARD",
        "CLIENT",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SUNSUBSCRIBE",
        "QUIT",
        "RESET",
        "SELECT",
        "AUTH",
        "HELLO",
        "SYNC",
        "PSYNC",
    }
)
"""Commands that change the connection's state or do not answer with exactly one reply
(WATCH inside a redis-py pipeline is not even queued): sent alone, never in a batch."""
MAX_BATCH = 512
"""Most commands in one pipeline; a longer turn's commands go in several."""

_Pending = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


def alone(args: tuple[Any, ...]) -> bool:
    """Whether a command must be sent on its own (blocking, or one of ALONE)."""
    return blocking(args) or (bool(args) and _text(args[0]).upper().split(" ")[0] in ALONE)


def blocking(args: tuple[Any, ...]) -> bool:
    """Whether a command may wait on the server (XREAD and XREADGROUP with BLOCK included)."""
    name = _text(args[0]).upper() if args else ""
    if name in BLOCKING:
        return True
    if name in ("XREAD", "XREADGROUP"):
        return any(_text(a).upper() == "BLOCK" for a in args[1:])
    return False


def _text(value: Any) -> str:
    # latin-1 maps every byte: a binary key is compared, never a decoding error
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class AutoPipelinedRedis(aioredis.Redis):
    """A redis-py asyncio client whose commands of one event-loop turn share one pipeline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()
        self.pipelines_sent = 0
        """Pipelines sent so far (diagnostics, benchmarks)."""
        self.commands_pipelined = 0
        """Commands those pipelines carried."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Queue the command for this turn's pipeline and wait for its own reply."""
        if self.single_connection_client or alone(args):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, options, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Let the pipelines under way finish, then close as redis-py does."""
        while self._pending or self._flushing:
            if self._pending and not self._flush_scheduled:
                self._flush()
            await asyncio.gather(*self._flushing, return_exceptions=True)
            await asyncio.sleep(0)
        await super().aclose(close_connection_pool)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            task = asyncio.ensure_future(self._send(pending[start : start + MAX_BATCH]))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            args, options, future = batch[0]
            try:
                result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            except BaseException as exc:  # handed to the caller, whatever it is
                _fail(future, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                _resolve(future, result)
            return
        try:
            async with self.pipeline(transaction=False) as pipe:
                for args, options, _ in batch:
                    pipe.execute_command(*args, **options)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the trip failed: every command of it learns why
            for _, _, future in batch:
                _fail(future, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if len(results) != len(batch):  # never hand one command's reply to another
            mismatch = RedisError(f"a pipeline of {len(batch)} commands got {len(results)} replies")
            for _, _, future in batch:
                _fail(future, mismatch)
            return
        self.pipelines_sent += 1
        self.commands_pipelined += len(batch)
        for (_, _, future), result in zip(batch, results, strict=True):
            if isinstance(result, ResponseError):
                _fail(future, result)
            else:
                _resolve(future, result)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
