"""The long-running commands: `flipsync run SERVICES` and `flipsync http`, until a signal."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus.settings import Settings
    from flipsync.stack import Service, Stack


async def run_services(settings: Settings, services: list[Service]) -> int:
    """Run services until SIGTERM or SIGINT, then stop cleanly."""
    from flipsync.heap import settle_heap
    from flipsync.scrape import start_metrics
    from flipsync.stack import start_stack

    stack = await start_stack(settings, services)
    try:
        metrics = await start_metrics(stack)  # /metrics, when FLIPSYNC_METRICS_PORT is set
    except BaseException:
        await stack.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stopping(sig: int) -> None:
        if stop.is_set():  # the second one: the servers are stopped at once
            task.cancel()
            return
        again = "Ctrl-C again" if sig == signal.SIGINT else "again"
        print(f"stopping: {signal.Signals(sig).name} ({again} to quit at once)",
              file=sys.stderr, flush=True)  # fmt: skip
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping, sig)
    settle_heap()  # everything start-up made stays: the collector need not walk it again
    names = ", ".join(s.value for s in services)
    sim = f" simulated provider at {stack.sim.base_url}" if stack.sim else ""
    sim += f" HTTP API at {stack.api.url}" if stack.api else ""
    print(f"flipsync: running {names} on {stack.nats_url} (Redis {stack.redis_url}){sim}",
          flush=True)  # fmt: skip
    await stop.wait()
    try:
        if metrics is not None:
            await metrics.stop()
    finally:
        await _stop_or_quit(stack)
    return 0


async def _stop_or_quit(stack: Stack) -> None:
    """Stop the stack; a second signal meanwhile cuts it short (the servers still stop)."""
    try:
        await stack.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        print("flipsync: quit", file=sys.stderr, flush=True)


async def serve_api(settings: Settings, host: str, port: int) -> int:
    """`flipsync http`: the api service on host:port; embedded (no NATS_URL), every service.

    With no API key configured, this run gets a fresh key for tenant "default" and one for
    "demo" (what `make demo` wrote): printed on a terminal, else written to 0600 files (their
    paths printed), so they stay out of the logs.
    """
    from api.generated_key import announce_key, new_key
    from flipsync.stack import ALL_SERVICES, Service

    if problem := _listen_problem(host, port):  # before every service starts (~20 s)
        print(f"flipsync http: cannot listen on {host}:{port}: {problem}; "
              "choose another with --port", file=sys.stderr)  # fmt: skip
        return 2
    update: dict[str, Any] = {"api_host": host, "api_port": port}
    if not settings.api_keys and settings.api_keys_file is None:
        update["api_keys"] = {}
        for tenant in ("default", "demo"):  # uploads by default; the demo's listings
            key = new_key()
            update["api_keys"][key] = tenant
            shown = "localhost" if host in ("0.0.0.0", "::", "") else host
            page = f"http://{shown}:{port}/dashboard"
            announce_key(key, tenant, settings.data_dir, sys.stdout, dashboard=page)
    services = [Service.API] if settings.nats_url else [*ALL_SERVICES, Service.API]
    return await run_services(settings.model_copy(update=update), services)


def _listen_problem(host: str, port: int) -> str:
    """Why the API could not listen on host:port ("" when it can, at this moment)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return str(exc.strerror or exc)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            return str(exc.strerror or exc)
    return ""
