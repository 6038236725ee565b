"""A nats-py echo responder in its own process: the far end of the raw request/reply floor."""

from __future__ import annotations

import asyncio
import sys

import nats
import uvloop
from nats.aio.msg import Msg

SUBJECT = "bench.echo"


async def serve(url: str) -> None:
    """Answer every request on SUBJECT with its own payload, until killed."""
    nc = await nats.connect(url)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(SUBJECT, cb=echo)
    await nc.flush()
    print("flipsync: running echo", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1]))
