"""Judge grading: where configured per task type, a judge model scores answers 0..1.

``routing.judge_models`` maps a task type to a judge model; ``routing.judge_share`` of that
task type's answered requests (by a hash of the id) are judged, off the response path. The
judge is asked, as ``<id>-judge`` down the rest of the pipeline on the judge model, to score
the answer to the request's last user message against a schema {"score": 0..1, "reason"};
the score is folded into the graded quality of the answering model (router.routing.grades,
per agent and per task type and model), and the judge's cost is booked as routing's lever
cost (router.stages.off_path). An unparsable or failed judgement records no grade.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from bus.messages import ChatMessage, Lever, LlmRequest, LlmResult, OutputSchema
from router.background import Background
from router.context import RequestContext, Route
from router.outcomes import needs_ledger
from router.pipeline import Handler
from router.routing.grades import GradeStore
from router.routing.predict import prompt_text
from router.stages.off_path import MAX_IN_FLIGHT, Book, call, child, chosen, overhead_event

log = logging.getLogger(__name__)

SUFFIX = "-judge"
SALT = "judge"
MAX_CHARS = 4000
"""How much of the question and of the answer the judge is shown."""
SCHEMA = OutputSchema(
    name="judgement",
    schema={
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": 300},
        },
        "required": ["score", "reason"],
        "additionalProperties": False,
    },
)
INSTRUCTIONS = (
    "You grade an assistant's answer to a task. Score 1 for an answer that is correct, "
    "complete and follows every instruction, 0 for a wrong or unusable one, in between for "
    "partial answers. Reply with JSON: score (0 to 1) and a short reason."
)
SERVED = frozenset({Lever.ROUTED, Lever.ESCALATED, Lever.PACKED, Lever.BATCH_API, Lever.TRIMMED})


def judge_request(request: LlmRequest, answer: LlmResult) -> LlmRequest:
    """The judge's request about one answer (its own id, the judgement schema)."""
    question = prompt_text(request)[:MAX_CHARS]
    content = f"Task:\n{question}\n\nAnswer:\n{answer.content[:MAX_CHARS]}"
    return LlmRequest(
        id=request.id + SUFFIX,
        tenant=request.tenant,
        agent=request.agent,
        workflow_id=request.workflow_id,
        task_type=request.task_type,
        messages=[
            ChatMessage(role="system", content=INSTRUCTIONS),
            ChatMessage(role="user", content=content),
        ],
        output_schema=SCHEMA,
        max_output_tokens=200,
        priority=request.priority,
        tags=dict(request.tags),
    )


def score_of(judgement: LlmResult) -> float | None:
    """The judge's 0..1 score, or None when it gave none."""
    parsed = judgement.parsed
    if not judgement.ok or not isinstance(parsed, dict):
        return None
    score = parsed.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        return None
    return min(max(float(score), 0.0), 1.0)


class Judges:
    """Starts judgements of served answers (module doc); never waits for them."""

    def __init__(
        self,
        *,
        models: Mapping[str, str],
        providers: Mapping[str, str],
        share: float,
        grades: GradeStore,
        book: Book,
        catalog_version: Callable[[], str],
    ) -> None:
        """models: task type to judge model; providers: a model to the provider offering it
        (a judge model no provider offers is left out, with a warning)."""
        self._routes: dict[str, Route] = {}
        for task_type, model in models.items():
            provider = providers.get(model)
            if provider is None:
                log.warning("judge model %s of %s is not offered; not judging", model, task_type)
                continue
            self._routes[task_type] = Route(
                model=model, provider=provider, reason=f"judging {task_type} answers"
            )
        self._share = share
        self._grades = grades
        self._book = book
        self._version = catalog_version
        self._work = Background(MAX_IN_FLIGHT)

    def start(self, ctx: RequestContext, result: LlmResult, call_next: Handler) -> bool:
        """Begin judging a served answer when its task type is judged and it is chosen."""
        request = ctx.request
        route = self._routes.get(request.task_type)
        if route is None or not result.ok or result.lever not in SERVED:
            return False
        if not chosen(request.id, self._share, SALT):
            return False
        judged = child(ctx, judge_request(request, result), route)
        return self._work.spawn(lambda: self._judge(judged, request, result, call_next))

    async def drain(self) -> None:
        """Wait for the judgements under way (tests, shutdown)."""
        await self._work.drain()

    async def _judge(
        self, ctx: RequestContext, served: LlmRequest, answer: LlmResult, call_next: Handler
    ) -> None:
        judgement = await call(ctx, call_next)
        try:
            if needs_ledger(judgement):
                event = overhead_event(ctx.request, judgement, self._version(), arm=ctx.arm)
                await self._book(event)
            score = score_of(judgement)
            if score is None:
                log.info("judge gave no score for %s: %s", served.id, judgement.reason)
                return
            await self._grades.record_score(
                served.tenant, served.agent, served.task_type, answer.model, score
            )
        except Exception:
            log.warning("judgement of %s not recorded", served.id, exc_info=True)
