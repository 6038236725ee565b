"""Running one command to its exit status: the statuses (EXIT_CODES, `flipsync --help`), and
an unreachable server, Ctrl-C, SIGTERM or a closed pipe ended with one line, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from flipsync import data_dir

EXIT_CODES = """exit status:
  0    done
  1    done, but some products' workflows failed (each one is named); or an
       upload failed midway (what failed is named, the rest cancelled); or a
       flag, experiment or prompt change was refused, or a chat question got
       no answer (the reason is printed)
  2    bad usage, input or setting (a file, a column, a flag, a name that
       does not exist, a NATS_URL that is not a URL): nothing was started or
       changed
  3    NATS or Redis cannot be reached, or NATS stopped answering during an
       upload (the URL is named, and what to check)
  4    --timeout passed: what finished is written, the rest is not
  5    another flipsync command is using the local data directory
  130  interrupted (Ctrl-C): what finished is written, nothing is left running
  141  the output pipe closed early (| head): the rest was not printed
  143  terminated (SIGTERM): as for Ctrl-C
"""
"""The exit statuses every command shares, as its --help prints them."""
EXIT_UNREACHABLE = 3
"""NATS or Redis cannot be reached, or NATS stopped answering during an upload."""
EXIT_BUSY = 5
"""Another flipsync command is using the local data directory."""


def run_for_status(coro: Coroutine[Any, Any, int], hold: Path | None = None) -> int:
    """Run a command; an unreachable server, Ctrl-C or SIGTERM end it with one line and a
    stated exit status (see EXIT_CODES), never a traceback."""
    import uvloop

    from bus.reachable import Unreachable
    from bus.redis_memory import EvictingRedis
    from flipsync.providers import ProviderConfigError

    try:
        with data_dir.held(hold):
            status = uvloop.run(_signalled(coro))
        if status in STOPPED:
            _leave_now(status)
        return status
    except Unreachable as exc:
        print(f"flipsync: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (ProviderConfigError, EvictingRedis) as exc:  # a setting to change, in one line
        print(f"flipsync: {exc}", file=sys.stderr)
        return 2
    except data_dir.DataDirBusy as exc:
        coro.close()
        print(f"flipsync: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except BrokenPipeError:  # `flipsync report | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:  # a second Ctrl-C before the handler was in place
        print("flipsync: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


STOPPED = (4, 128 + signal.SIGINT, 128 + signal.SIGTERM)
"""Statuses of a run cut short (--timeout, Ctrl-C, SIGTERM): its process exits at once."""


def _leave_now(status: int) -> NoReturn:
    """Exit without the interpreter's finalization: everything is stopped and said by now,
    and collecting the heap (the router's models, tokenizers) took ~5 s after a Ctrl-C."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


async def _signalled(coro: Coroutine[Any, Any, int]) -> int:
    """Await coro; the first SIGINT or SIGTERM cancels it (its clean-up runs: a stack stops
    within its grace) and the status is 128 + the signal. A second one cancels the clean-up
    too: what is left of it is stopping the servers (flipsync.stack.Stack.stop)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    got: list[int] = []

    def cancel(sig: int) -> None:
        got.append(sig)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, cancel, sig)
    try:
        status = await coro
    except asyncio.CancelledError:
        if not got:
            raise
        print("flipsync: interrupted", file=sys.stderr)
        return 128 + got[0]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 128 + got[0] if got else status
