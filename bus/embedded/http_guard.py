"""Connection limits for the HTTP servers FlipSync runs (the API and the simulated provider).

uvicorn (httptools) leaves a connection open for as long as its client likes while the
request's headers or body are still coming, takes headers of any size, keeps writing to a
client that reads nothing, and accepts connections until the process runs out of file
descriptors. An attacker's pass measured it: idle, header-dribbling and body-dribbling
(1 byte a second) connections were all still open after 20 s (they never close); 3,000 idle
connections held 3,000 descriptors; 106 MB of headers on one connection reached the app
(100,001 headers, the process 117 MB larger); a streamed answer to a client that reads
nothing held its connection, its task and every piece after the answer had ended.

GuardedHttp, the protocol InLoopServer serves with, bounds each of those (ConnectionLimits):

- a request's line and headers must arrive within header_timeout_s of the connection (or
  of the previous response), else 408 and the connection closes (closes without a word
  if not a byte came); at most max_header_bytes of them, else 431;
- a body must keep coming: at least body_min_bytes in every body_window_s (a rate, not a
  total time, so large uploads on slow links pass), else 408 and close; time during which
  the server itself stopped reading (the app not keeping up) does not count;
- a client that takes nothing of a response for write_timeout_s while the server has data
  for it is cut off;
- at most max_connections are open: a new one closes the connection that has waited longest
  for a request's headers (an idle or slow one), or is refused with 503 when every
  connection is busy with a request.

None of this knows tenants: it runs before the key is read, and bounds what any client,
keyed or not, can hold.
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def default_max_connections() -> int:
    """Half the process's file descriptors (the rest for NATS, Redis, providers, files),
    at most 16,384."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 16_384
    return max(64, min(soft // 2, 16_384))


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may hold (see the module's docstring)."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    body_window_s: float = 10.0
    body_min_bytes: int = 5_000
    """500 bytes a second, as Apache's mod_reqtimeout asks by default."""
    write_timeout_s: float = 30.0
    max_connections: int = field(default_factory=default_max_connections)


def _refusal(status: int, reason: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, len(reason), reason)
    )


TIMEOUT = _refusal(408, b"Request Timeout")
TOO_LARGE = _refusal(431, b"Request Header Fields Too Large")
BUSY = _refusal(503, b"Service Unavailable")


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with ConnectionLimits; guarded(limits) makes one class
    per server (uvicorn builds the protocol from a class)."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    waiting: ClassVar[OrderedDict[GuardedHttp, None]] = OrderedDict()
    """The server's connections waiting for a request's headers, longest waiting first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True  # the parser is reading a request line and headers
        self._header_room = self.limits.max_header_bytes
        self._body_seen = 0
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    # A request's headers: within header_timeout_s and max_header_bytes.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._evict_one():
            self._refuse(BUSY)
            return
        self._wait_for_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers and len(data) > self._header_room:
            head, data = data[: self._header_room], data[self._header_room :]
            super().data_received(head)
            if self.transport.is_closing():
                return
            if self._in_headers:
                self._refuse(TOO_LARGE)
                return
        elif self._in_headers:
            self._header_room -= len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_timer()
        self.waiting.pop(self, None)
        super().on_headers_complete()
        self._body_seen = 0
        self._timer = self.loop.call_later(self.limits.body_window_s, self._body_window_ends)

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._stop_timer()
        self._in_headers = True
        self._header_room = self.limits.max_header_bytes
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:
            self._wait_for_headers()  # answered before its body ended (a 413, a 401)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_headers and not self.transport.is_closing() and self.cycle.response_complete:
            self._wait_for_headers()  # none was pipelined: the next request's headers
        # else the body is still coming after an early answer: its window runs on

    def _wait_for_headers(self) -> None:
        self._stop_timer()
        self.waiting[self] = None
        self.waiting.move_to_end(self)
        self._timer = self.loop.call_later(self.limits.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._timer = None
        if self._in_headers and (self.cycle is None or self.cycle.response_complete):
            self._refuse(TIMEOUT if self._began else None)

    @property
    def _began(self) -> bool:
        """Whether a byte of the next request came (else it is closed without an answer: a
        client may be about to send on a kept-alive connection, and would read ours)."""
        return self._header_room < self.limits.max_header_bytes

    # A body: body_min_bytes in every body_window_s.

    def _body_window_ends(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        # Not while the server holds the body back: reading paused, or a 100 Continue the
        # app has not asked for yet (uvicorn sends it on the app's first receive).
        held = self.flow.read_paused or getattr(self.cycle, "waiting_for_100_continue", False)
        if self._body_seen < self.limits.body_min_bytes and not held:
            self._refuse(TIMEOUT)
            return
        self._body_seen = 0
        self._timer = self.loop.call_later(self.limits.body_window_s, self._body_window_ends)

    # A response: the client must take some of it within write_timeout_s.

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(
                self.limits.write_timeout_s, self.transport.abort
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    # The connection count.

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for a request's headers; False if
        every other connection is busy with a request."""
        for other in self.waiting:
            if other is not self:
                other._refuse(TIMEOUT if other._began else None)
                return True
        return False

    def _refuse(self, answer: bytes | None) -> None:
        """Write answer (if any) between responses, then close."""
        self._stop_timer()
        self.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        if answer is not None and (idle if self._in_headers else not self.cycle.response_started):
            self.transport.write(answer)  # never inside a response being written
        self.transport.close()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def guarded(limits: ConnectionLimits) -> type[GuardedHttp]:
    """A GuardedHttp class with its own limits and its own count of waiting connections."""
    return type("GuardedHttp", (GuardedHttp,), {"limits": limits, "waiting": OrderedDict()})
