"""The router service: consumes LLM requests from JetStream and answers each exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import msgspec
import nats.errors
from faststream.nats import NatsBroker, NatsRouter
from nats.aio.client import Client
from nats.aio.msg import Msg
from opentelemetry import trace
from redis.exceptions import RedisError

from bus import subjects
from bus.acks import delivery_of
from bus.codec import decode, peek_ids
from bus.consumers import Incoming, durable_consumer, is_permanent, working
from bus.durables import Durable
from bus.errors import WireError
from bus.messages import ErrorCode, LlmRequest, LlmResult, Priority, error_result
from bus.pull_loop import STOP_GRACE_S, PullLoop
from bus.settings import Settings
from router.context import RequestContext
from router.errors import RouterError, UnavailableError, UnknownAgentError
from router.intake import check_request
from router.long_texts import count_long_texts
from router.metrics import ResultRecorder
from router.outcomes import OutcomePublisher, claimed, needs_ledger
from router.paid_calls import booked
from router.pipeline import Handler, Stage, close_stages, compose
from router.request_span import annotate
from router.semantic.lexicon import load_word_tables
from router.tokenizer import load_vocabulary

log = logging.getLogger(__name__)
DEADLINE_GRACE_S = 1.0
"""How long past its deadline a request may still be in the pipeline before it is cut off:
dispatch answers a deadline itself, so this only stops a stage that waits too long."""


def _deadline_guard_s(ctx: RequestContext, settings: Settings) -> float | None:
    """Seconds the pipeline may take for this request, or None for no guard.

    A bulk request is never cut off while the Batch API lane is on: the lane may hold it in a
    provider batch that is already paid for, and a cancelled waiter would drop the batch's
    answer and its ledger event. Dispatch still answers a bulk request's deadline itself.
    """
    if ctx.request.priority is Priority.BULK and settings.batch_api:
        return None
    remaining = ctx.remaining_s()
    return None if remaining is None else max(remaining, 0.0) + DEADLINE_GRACE_S


_NATS_AWAY = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
)


def retry_later(exc: BaseException) -> bool:
    """Whether exc says a store was away, not that the request is bad: a Redis connection,
    timeout or cluster failure (never a reply about the data), NATS reconnecting, or budget
    counters being rebuilt. A redelivery later may answer such a request."""
    if isinstance(exc, (UnavailableError, *_NATS_AWAY)):
        return True
    return isinstance(exc, RedisError) and not is_permanent(exc)


WHERE = Durable(subjects.REQUESTS_ALL, subjects.STREAM_REQUESTS, subjects.DURABLE_ROUTER)
"""The durable request consumer, shared by all replicas."""
FETCH_MAX = 64
"""Most requests one fetch asks for (never more than the free workers)."""


class RouterService:
    """Runs each request through the pipeline and publishes its one terminal result.

    It consumes with nats-py directly (bus.pull_loop, started by start()): each request in
    its own task, at most router_workers at a time; doc_router() documents the same
    subscriber for the AsyncAPI document.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        stages: Sequence[Stage],
        terminal: Handler,
        catalog_version: str | Callable[[], str],
        known_agents: frozenset[str] | None = None,
        broker: NatsBroker,
        tracer: trace.Tracer | None = None,
        results: ResultRecorder | None = None,
    ) -> None:
        self._settings = settings
        self._results = results or ResultRecorder()
        self._outcomes = OutcomePublisher(broker, catalog_version)
        self._tracer = tracer or trace.get_tracer("flipsync.router")
        self._closing = (*stages, terminal)
        self._pipeline = compose(stages, terminal, self._tracer)
        self._known_agents = known_agents
        self._trace_prompts = settings.trace_prompts
        workers = settings.router_workers
        self._loop = PullLoop(
            WHERE,
            settings,
            tracer=self._tracer,
            on_message=self.on_request,
            fetch=min(workers, FETCH_MAX),
            workers=workers,
        )

    async def start(self, nc: Client) -> None:
        """Start consuming requests, once the exact tokenizer's vocabulary and, with the
        semantic cache on, its word tables are read (in threads: none is read at a first
        request, under the loop)."""
        loading = [load_vocabulary()]
        if self._settings.enable_semantic_cache:
            loading.append(load_word_tables())
        await asyncio.gather(*loading)
        await self._loop.start(nc)

    async def stop(self) -> None:
        """Stop consuming; requests in hand are answered first, then the stages close: the
        work they started off the response path (shadow checks, judgements, packing
        windows) ends and is booked while the providers and the bus are still there, and
        their own tasks stop (bus.pull_loop.STOP_GRACE_S each)."""
        await self._loop.stop()
        try:
            if not await close_stages(self._closing, STOP_GRACE_S):
                log.warning("the router's stages still closing after %.0f s", STOP_GRACE_S)
        except Exception:
            log.warning("closing the router's stages failed", exc_info=True)

    def doc_router(self) -> NatsRouter:
        """The request consumer as FastStream documents it (the AsyncAPI document); the live
        consumer is this service's start(), which this router is never started in place of."""
        router = NatsRouter()

        async def on_request(incoming: Incoming) -> None:
            """Answer one request; raise only when NATS itself failed, so it is redelivered."""
            raise RuntimeError("documentation only: the live consumer is RouterService.start")

        durable_consumer(
            router,
            on_request,
            subject=WHERE.subject,
            stream=WHERE.stream,
            durable=WHERE.durable,
            settings=self._settings,
            workers=self._settings.router_workers,
        )
        return router

    async def on_request(self, msg: Msg) -> None:
        """Answer one request; raise only when NATS itself failed, so it is redelivered."""
        started = time.perf_counter()
        outcomes = self._outcomes
        data: bytes = msg.data
        try:
            request = decode(data, LlmRequest, max_bytes=self._settings.max_request_bytes)
            self._check(request, msg.subject)
            await check_request(request)  # no messages, a bad cap or schema: no call made
            await count_long_texts(request)  # off the loop, so the stages' counts are memos
        except (WireError, UnknownAgentError) as exc:
            await self._reject(outcomes, msg.subject, data, exc)
            return
        except Exception as exc:  # a check that broke must not lose the request
            if retry_later(exc) and delivery_of(msg) < self._settings.max_deliver:
                raise  # a store away: redelivered later
            log.error("a request on %s failed its intake checks", msg.subject, exc_info=exc)
            reason = f"internal error while checking the request: {type(exc).__name__}: {exc}"
            await self._reject(outcomes, msg.subject, data,
                               WireError(ErrorCode.INTERNAL, reason[:300]))  # fmt: skip
            return
        try:
            await self._answer_once(msg, request, started)
        except Exception as exc:  # NATS or Redis failed: redelivered, or on the last try kept
            delivery = delivery_of(msg)
            if delivery < self._settings.max_deliver:
                raise  # redelivered after a growing delay (bus.pull_loop)
            reason = f"gave up after {delivery} deliveries: {type(exc).__name__}: {exc}"
            await self._reject(outcomes, msg.subject, data,
                               WireError(ErrorCode.INTERNAL, reason))  # fmt: skip

    async def _answer_once(self, msg: Msg, request: LlmRequest, started: float) -> None:
        """Answer a decoded request (or re-publish its stored result), then it is acked."""
        outcomes = self._outcomes
        delivery = delivery_of(msg)
        async with working(msg, self._settings.ack_wait_s / 3):
            # Only a redelivery can find a result an earlier delivery stored: a first one
            # skips the lookup (JetStream drops a re-published request id as a duplicate).
            stored = await outcomes.stored_result(request) if delivery > 1 else None
            if stored is not None:  # a redelivery of a request an earlier replica finished
                await outcomes.publish(request, stored)
                self._results.record(stored, time.perf_counter() - started)
                return
            # The result goes out first; the stages' bookkeeping (the budget settle, dedup's
            # finish) runs after it, then the ledger event (it says what the settle charged),
            # and only then is the request acked (bus.pull_loop), so a replica dying in
            # between leaves a redelivery that finds the stored result (router.outcomes).
            ctx = RequestContext(request=request, delivery=delivery, defer_after=True)
            try:
                result = claimed(await self._pipeline_result(ctx))
                annotate(trace.get_current_span(), request, result, prompts=self._trace_prompts)
                await outcomes.publish_result(result)
                self._results.record(result, time.perf_counter() - started)
            finally:
                await ctx.run_after()
            if needs_ledger(result):
                await outcomes.publish_ledger(request, result, ctx.settled)

    async def answer(self, request: LlmRequest, *, delivery: int = 1) -> LlmResult:
        """The pipeline's result for a request; every failure becomes an error result, except
        a store away (retry_later) before anything was paid, which raises for a redelivery.

        delivery is JetStream's delivery count of the request (above 1: a redelivery)."""
        return (await self._answer(request, delivery))[0]

    async def _answer(self, request: LlmRequest, delivery: int) -> tuple[LlmResult, RequestContext]:
        """answer(), with the request's context (what its settle charged, for the ledger)."""
        ctx = RequestContext(request=request, delivery=delivery)
        return claimed(await self._pipeline_result(ctx)), ctx

    async def _pipeline_result(self, ctx: RequestContext) -> LlmResult:
        """The pipeline's result for ctx; every failure becomes an error result."""
        request = ctx.request
        guard = asyncio.timeout(_deadline_guard_s(ctx, self._settings))
        try:
            async with guard:
                result = await self._pipeline(ctx)
            # The experiment arm travels on the result into its ledger event.
            return result if ctx.arm is None else msgspec.structs.replace(result, arm=ctx.arm)
        except UnavailableError as exc:
            if not ctx.paid:
                raise  # nothing paid: on_request has it redelivered (retry_later)
            error = error_result(request.id, request.tenant, request.agent, exc.code, exc.reason)
            return booked(ctx, error)
        except RouterError as exc:
            error = error_result(request.id, request.tenant, request.agent, exc.code, exc.reason)
            return booked(ctx, error)  # a failure after a paid answer still books it
        except TimeoutError as exc:
            if not guard.expired():  # a stage's own timeout (a NATS request, say): not ours
                return booked(ctx, _internal(request, exc))
            # A stage waited past the deadline (dispatch reports its own).
            reason = "the deadline passed while the request waited in the pipeline"
            code = ErrorCode.DEADLINE_EXCEEDED
            return booked(
                ctx, error_result(request.id, request.tenant, request.agent, code, reason)
            )
        except Exception as exc:  # a bug must not lose the request: it gets a reason
            if not ctx.paid and retry_later(exc):
                raise  # Redis or NATS away before anything was paid: redelivered later
            return booked(ctx, _internal(request, exc))

    def _check(self, request: LlmRequest, subject: str) -> None:
        """Refuse ids and names unfit for a subject, a body that is not its subject's, unknown
        agents."""
        try:
            expected = subjects.llm_request(request.tenant, request.agent)
            subjects.token(request.id)
            # Names that key caches, routing state, ledger rows and metrics: bounded tokens,
            # or a sender could grow them without end (a workflow id may be empty).
            named = (
                ("workspace", request.workspace), ("project", request.project),
                ("task_type", request.task_type), ("workflow_id", request.workflow_id or "-"),
            )  # fmt: skip
            for name, value in named:
                if not subjects.valid_token(value):
                    shown = subjects.shown(value)
                    raise ValueError(f"{name} {shown}: letters, digits, _ and -, 1 to 64")
        except ValueError as exc:
            raise WireError(ErrorCode.MALFORMED, str(exc)) from exc
        if subject != expected:
            reason = f"request for {request.tenant}/{request.agent} arrived on {subject}"
            raise WireError(ErrorCode.MALFORMED, reason)
        if self._known_agents is not None and request.agent not in self._known_agents:
            raise UnknownAgentError(request.agent)

    async def _reject(
        self,
        outcomes: OutcomePublisher,
        subject: str,
        data: bytes,
        exc: WireError | UnknownAgentError,
    ) -> None:
        """Dead-letter bad input, and answer its requester when it can be identified."""
        code, reason = exc.code, exc.reason
        await outcomes.dead_letter("router", subject, code, reason, data)
        request_id, tenant, agent = peek_ids(data)
        # The error goes to the sender the subject names (NATS permissions vouch for it),
        # never to a tenant a bad body claims.
        tenant, agent = subjects.request_sender(subject) or (tenant, agent)
        try:
            for value in (request_id, tenant, agent):
                subjects.token(value)
        except ValueError:
            return  # no requester to answer: the dead letter is all that can be kept
        rejected = error_result(request_id, tenant, agent, code, reason)
        await outcomes.publish_result(rejected)
        self._results.record(rejected, 0.0)


def _internal(request: LlmRequest, exc: Exception) -> LlmResult:
    """The error result of a bug or unexpected failure inside the pipeline, logged."""
    log.error("request %s failed inside the pipeline", request.id, exc_info=exc)
    reason = f"internal error: {type(exc).__name__}: {exc}"
    return error_result(request.id, request.tenant, request.agent, ErrorCode.INTERNAL, reason)
