"""A tiny in-process OTLP/HTTP trace receiver: what Jaeger would get, kept for assertions.

It serves on its own thread, not on the test's event loop: the real OTLPSpanExporter posts
synchronously from the SDK's export thread, and TracerProvider.force_flush()/shutdown() block
their caller until it has. A receiver on the event loop would wait on the very loop they block.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bus.embedded.process import free_port

HOST = "127.0.0.1"
TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True, kw_only=True)
class ReceivedSpan:
    """One span as the collector received it."""

    trace_id: str
    """32 hex digits."""
    span_id: str
    """16 hex digits."""
    parent_span_id: str
    """16 hex digits, or "" for a root span."""
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    service_name: str = ""
    """The resource's service.name."""
    links: tuple[tuple[str, str], ...] = ()
    """(trace id, span id) of each span this one links to."""


class OtlpReceiver:
    """Accepts POST /v1/traces (OTLP/HTTP protobuf) on a free loopback port and keeps the spans."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The base URL to configure as OTEL_EXPORTER_OTLP_ENDPOINT."""
        return f"http://{HOST}:{self.port}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        """A snapshot of every span received so far."""
        with self._lock:
            return list(self._spans)

    async def start(self) -> None:
        """Listen and serve on a background thread until stop()."""
        if self._server is not None:
            return
        server = ThreadingHTTPServer((HOST, self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="otlp-receiver", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop serving and close the socket."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        await asyncio.to_thread(server.shutdown)  # waits for serve_forever to return
        server.server_close()
        if thread is not None:
            await asyncio.to_thread(thread.join)

    async def __aenter__(self) -> OtlpReceiver:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _keep(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        received: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            attributes=_attributes(span.attributes),
                            service_name=service,
                            links=tuple(
                                (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                            ),
                        )
                    )
        with self._lock:
            self._spans.extend(received)


def _handler_for(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects
        timeout = 5.0  # an idle keep-alive connection frees its thread

        def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != TRACES_PATH:
                self._answer(404, b"", "text/plain")
                return
            if self.headers.get("Content-Type") != PROTOBUF:
                self._answer(415, b"", "text/plain")
                return
            try:
                receiver._keep(body)
            except Exception:  # a malformed body is the client's fault: say so, keep serving
                self._answer(400, b"", "text/plain")
                return
            self._answer(200, ExportTraceServiceResponse().SerializeToString(), PROTOBUF)

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Stay quiet: tests read the spans, not an access log."""

    return Handler


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)
