"""FlipSync services as child OS processes: for tests that kill them and benchmarks that
spread load over cores the way a deployment would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

READY_LINE = b"flipsync: running"


class ChildProcess:
    """A child process that is ready once it prints a line, or once a port accepts."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        ready_line: bytes | None = None,
        ready_port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        """Where its output goes once it is ready (appended); None: discarded."""
        self.env = {**os.environ, **(env or {})}
        self.ready_line = ready_line
        self.ready_port = ready_port
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self, ready_within_s: float = 30.0) -> None:
        """Start the process and wait until it is ready."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(ready_within_s):
            if self.ready_line is not None:
                await self._wait_for_line(self.ready_line)
            if self.ready_port is not None:
                await self._wait_for_port(self.ready_port)
        # Keep reading its output, or a chatty child blocks on a full pipe.
        assert self.proc.stdout is not None
        self._drain = asyncio.create_task(_drain(self.proc.stdout, self.log_path))

    async def _wait_for_line(self, line: bytes) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        seen: list[bytes] = []
        while True:
            got = await self.proc.stdout.readline()
            if not got:
                tail = b"".join(seen[-15:]).decode(errors="replace")
                raise RuntimeError(f"{self.argv} exited before it was ready:\n{tail}")
            if got.startswith(line):
                return
            seen.append(got)

    async def _wait_for_port(self, port: int) -> None:
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return

    def kill(self) -> None:
        """SIGKILL: no chance to ack, publish or clean up anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not go."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
            await proc.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


async def _drain(stream: asyncio.StreamReader, log_path: Path | None) -> None:
    """Read stream to its end, appending it to log_path if there is one."""
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(log_path.open("ab")) if log_path is not None else None
        while chunk := await stream.read(65536):
            if log is not None:
                log.write(chunk)
                log.flush()


def service_process(
    services: Sequence[str], env: dict[str, str], *, log_path: Path | None = None
) -> ChildProcess:
    """`flipsync run SERVICES` as a child process (its output to log_path, if given)."""
    argv = [sys.executable, "-m", "flipsync", "run", *services]
    return ChildProcess(argv, env, ready_line=READY_LINE, log_path=log_path)


def simulated_provider_process(
    port: int, latency_ms: float = 0.0, *, model_quality: bool = False
) -> ChildProcess:
    """The simulated provider as its own process, as a real provider would be; with
    model_quality its models differ (simulator.quality)."""
    argv = [
        sys.executable, "-m", "simulator",
        "--port", str(port), "--latency-ms", str(latency_ms),
        *(["--model-quality"] if model_quality else []),
    ]  # fmt: skip
    return ChildProcess(argv, ready_port=port)
