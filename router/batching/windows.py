"""Open windows by key, each closed by its timer or when full; the I/O-free Window decides when."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from router.batching.policy import Window

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def now_ms() -> int:
    """Wall-clock milliseconds, the clock request deadlines are written in."""
    return time.time_ns() // 1_000_000


class Windows(Generic[K, T]):
    """At most one open window per key; on_close gets a closed window's items."""

    def __init__(
        self,
        *,
        window_ms: int,
        max_items: int,
        on_close: Callable[[K, list[T]], None],
        deadline_slack_ms: int = 0,
    ) -> None:
        self._window_ms = window_ms
        self._max_items = max_items
        self._slack_ms = deadline_slack_ms
        self._on_close = on_close
        self._open: dict[K, Window[T]] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K, item: T, deadline_ms: int = 0, window_ms: int | None = None) -> None:
        """Put item in the window of key (opening one if none is open, of window_ms if given,
        else of this set's window)."""
        window = self._open.get(key)
        if window is None:
            window = Window(
                opened_ms=now_ms(),
                window_ms=self._window_ms if window_ms is None else window_ms,
                max_items=self._max_items,
                deadline_slack_ms=self._slack_ms,
            )
            self._open[key] = window
        if window.add(item, deadline_ms):
            self.close(key)
            return
        old = self._timers.pop(key, None)
        if old is not None:  # a short deadline may have brought the closing time forward
            old.cancel()
        delay_s = max(window.closes_at_ms() - now_ms(), 0) / 1000
        # An empty context: what on_close starts is not part of whichever request came first.
        self._timers[key] = asyncio.get_running_loop().call_later(
            delay_s, self.close, key, context=contextvars.Context()
        )

    def close(self, key: K) -> None:
        """Close the window of key now, if one is open."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        window = self._open.pop(key, None)
        if window is not None:
            self._on_close(key, window.items)

    def close_all(self) -> None:
        """Close every open window now."""
        for key in list(self._open):
            self.close(key)
