"""FlipSync services as separate OS processes, for tests that kill them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys


class Worker:
    """`python -m flipsync run SERVICES` as a child process with a given environment."""

    def __init__(self, services: list[str], env: dict[str, str]) -> None:
        self.services = services
        self.env = {**os.environ, **env}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, ready_within_s: float = 30.0) -> None:
        """Start the process and wait for its 'running' line."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flipsync", "run", *self.services,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        async with asyncio.timeout(ready_within_s):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"worker {self.services} exited before it was ready")
                if line.startswith(b"flipsync: running"):
                    return

    def kill(self) -> None:
        """SIGKILL: no chance to ack, publish or clean up anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not go."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        else:
            await proc.wait()
