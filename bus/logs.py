"""Logging for FlipSync processes: results and warnings a person should act on by default,
library chatter (FastStream's task callbacks, idle pull fetches) only when asked with -v."""

from __future__ import annotations

import asyncio
import logging
import sys

BROKER_LOGGER = "flipsync.broker"
"""The logger every FlipSync NatsBroker logs through (FastStream's own are not configured)."""
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CHATTER = ("is being executed", "Connection established")


class QuietBroker(logging.Filter):
    """Drops FastStream's routine records: task callbacks and idle pull fetches that time out.

    A pull subscriber's fetch on an empty stream ends in TimeoutError; FastStream's task
    supervisor logs that as an ERROR with a traceback, although nothing is wrong.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a routine record."""
        message = record.getMessage()
        if any(text in message for text in _CHATTER):
            return False
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, TimeoutError) and "retrying" in message)


class CancelledIsNoError(logging.Filter):
    """Drops FastStream's records of a handler cancelled by a stop, at every verbosity: the
    message is redelivered to whichever process runs the service next; nothing failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a handler's cancellation."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, asyncio.CancelledError):
            return False
        return not record.getMessage().startswith("CancelledError")


class QuietShutdown(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for FastStream's pull-consumer
    tasks, which end with ClosedResourceError when their subscriber stops."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a pull consumer's leftover task."""
        if record.name != "asyncio":
            return True
        return "_consume_pull" not in record.getMessage()


def configure(verbosity: int = 0, *, service: bool = False) -> None:
    """Set up logging once, at a process's start.

    verbosity 0: warnings for a long-running service, errors only for an interactive command
    (whose output is its result); 1 (-v): info and library records, less FastStream's
    per-message task callbacks; 2 (-vv): debug, everything.
    """
    if verbosity >= 2:
        level = logging.DEBUG
    elif verbosity == 1:
        level = logging.INFO
    else:
        level = logging.WARNING if service else logging.ERROR
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    if verbosity == 0:
        handler.addFilter(QuietShutdown())
    root.addHandler(handler)
    root.setLevel(level)
    broker = logging.getLogger(BROKER_LOGGER)
    for old in list(broker.filters):
        broker.removeFilter(old)
    broker.addFilter(CancelledIsNoError())
    if verbosity <= 1:  # a task callback per message is noise even at -v (82 lines a chat)
        broker.addFilter(QuietBroker())
    # In a command, a handler's failure (a NATS timeout under load) is retried by JetStream
    # and, if it lasts, reported as the product's failed result: its traceback is for -v.
    quiet_handlers = verbosity == 0 and not service
    broker.setLevel(logging.CRITICAL if quiet_handlers else logging.NOTSET)
    # FastStream's own module logger keeps its stderr handler; it follows the same level.
    logging.getLogger("faststream").setLevel(level)
    # nats-py logs each failed connection attempt with a traceback; a command says it once,
    # in its own words (bus.reachable), so only -v shows them.
    quiet_nats = verbosity == 0 and not service
    logging.getLogger("nats").setLevel(logging.CRITICAL if quiet_nats else logging.NOTSET)
