"""The long-running commands: `flipsync run SERVICES` and `flipsync http`, until a signal."""

from __future__ import annotations

import asyncio
import shlex
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus.settings import Settings
    from flipsync.stack import Service, Stack


async def run_services(
    settings: Settings, services: list[Service], *, started: Callable[[Stack], str] | None = None
) -> int:
    """Run services until SIGTERM or SIGINT, then stop cleanly (started: more to print once
    they run)."""
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
    if started is not None:
        print(started(stack), flush=True)
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
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    key_files: dict[str, Path] = {}
    if not settings.api_keys and settings.api_keys_file is None:
        update["api_keys"] = {}
        for tenant in ("default", "demo"):  # uploads by default; the demo's listings
            key = new_key()
            update["api_keys"][key] = tenant
            page = f"http://{shown}:{port}/dashboard"
            key_files[tenant] = announce_key(
                key, tenant, settings.data_dir, sys.stdout, dashboard=page
            )
    services = [Service.API] if settings.nats_url else [*ALL_SERVICES, Service.API]

    def exports(stack: Stack) -> str:
        api_port = stack.api.port if stack.api is not None else port
        return http_exports(
            stack.nats_url, stack.redis_url, f"http://{shown}:{api_port}", key_files
        )

    return await run_services(settings.model_copy(update=update), services, started=exports)


def http_exports(nats_url: str, redis_url: str, api_url: str, key_files: Mapping[str, Path]) -> str:
    """What `flipsync http` prints once it serves, to paste into a shell: the servers' URLs for
    the flipsync commands, the /v1 endpoint and a key for an OpenAI client, the dashboard and
    each generated key's file (key_files, by tenant; none when the keys are configured)."""
    q = shlex.quote
    lines = [
        "# for flipsync budget, ledger, flags, experiment and finetune on these servers:",
        f"export NATS_URL={q(nats_url)}",
        f"export REDIS_URL={q(redis_url)}",
        "# for an OpenAI client (the openai SDK reads these), in a shell of its own: flipsync's",
        "# own commands read OPENAI_BASE_URL and OPENAI_API_KEY as the provider they call",
        f"export OPENAI_BASE_URL={q(api_url + '/v1')}",
    ]
    if (default := key_files.get("default")) is not None:
        lines.append(f'export OPENAI_API_KEY="$(cat {q(str(default))})"  # tenant default')
    else:
        lines.append("# OPENAI_API_KEY: one of the keys configured in FLIPSYNC_API_KEYS")
    lines.append(f"# dashboard: {api_url}/dashboard (it asks for an API key)")
    lines += [f"# API key of tenant {tenant}: in {path}" for tenant, path in key_files.items()]
    return "\n".join(lines)


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
