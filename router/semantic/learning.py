"""The semantic cache's learning: the error bound's decision on a lookup, and the outcomes
that teach it. Part of SemanticCache (store.py), which sets the attributes declared here.

Whether a lookup is served is the error bound's call (router.semantic.calibration): each
miss that a paid call then answers is an observation (would the best entry's answer have
been right?), shared through a second stream so that every replica learns from all of
them; verify() adds the outcome of a served hit (a validator, explicit feedback, a shadow
check). Each replica also counts the scores of its own lookups that a threshold decides
(Calibrator.lookup, not shared: a sample of the same traffic), so that the bound weighs
each score by how often it is served. Candidates whose question clashes with the request's
(opposite intents, different unknown names: entities.conflict) are dropped before scoring;
a best entry alike but for a word that changes the question (minimal_pairs.differs) is
refused, teaches nothing and is not counted.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import NamedTuple

from redis.exceptions import RedisError

from bus.messages import Lever, LlmRequest, LlmResult
from router.semantic import records
from router.semantic.calibration import Calibrator, Scored, judge, score
from router.semantic.calibrators import Calibrators
from router.semantic.entry_store import EntryStore
from router.semantic.minimal_pairs import differs
from router.semantic.policy import Candidate, Decision, TaskPolicy
from router.semantic.request_view import RequestView, answer_key

log = logging.getLogger(__name__)

PAID_LEVERS = frozenset(
    {Lever.ROUTED, Lever.ESCALATED, Lever.PACKED, Lever.BATCH_API, Lever.TRIMMED}
)
"""Results of a paid call; a copy another lever served is never stored again."""
VERDICT_WINDOW_S = 3600
"""How long a served hit waits in Redis for a verdict (validators answer in seconds; later
feedback is not learned from): bounds the keys a busy cache keeps, as Redis never evicts."""
PENDING = 20_000
"""Missed lookups remembered until their paid answer arrives, and entries whose wrong
answers this replica remembers."""


class Lookup(NamedTuple):
    """One scored lookup, remembered until its outcome is known."""

    tenant: str
    task_type: str
    entry_id: str
    answer_key: str
    score: float


class Learning:
    """SemanticCache's error bound: its decisions, and the observations it learns from."""

    _entries: EntryStore
    _calibrators: Calibrators
    _wrong_at: OrderedDict[tuple[str, str], float]
    _missed: OrderedDict[str, Lookup]

    async def learn(self, request: LlmRequest, result: LlmResult) -> bool:
        """Label request's missed lookup with its paid answer: would the best entry have been
        right? True when an observation was recorded (put calls it; call it alone for an
        answer that is not to be stored)."""
        missed = self._missed.pop(request.id, None)
        if missed is None or not result.ok or result.lever not in PAID_LEVERS:
            return False
        tenant, task_type, entry_id, key, at = missed
        await self.observe(tenant, task_type, entry_id, at, answer_key(result) == key, "miss")
        return True

    async def verify(
        self, request_id: str, correct: bool, source: str = "validator", *, tenant: str = ""
    ) -> bool:
        """Record whether a served semantic hit was right (a validator, explicit feedback or
        a shadow check said so), on any replica: the hit is kept in Redis under its request
        id until its first verdict. False when no hit of that request (of tenant, if given)
        awaits one."""
        served = await self._entries.take_served(request_id)
        if served is None:
            return False
        if tenant and served.tenant != tenant:  # another tenant's request id: never its
            await self._entries.mark_served(request_id, served, VERDICT_WINDOW_S)  # verdict
            return False
        await self.observe(
            served.tenant, served.task_type, served.entry_id, served.score, correct, source
        )
        return True

    def calibrator(self, tenant: str, task_type: str) -> Calibrator | None:
        """The observations of one tenant and task type (for inspection and benchmarks)."""
        return self._calibrators.get(tenant, task_type)

    def _decide(
        self,
        request: LlmRequest,
        seen: RequestView,
        candidates: list[Candidate],
        policy: TaskPolicy,
    ) -> tuple[Decision, Lookup | None]:
        """The error bound's decision, and the lookup when it is served (to keep for its
        verdict); a lookup not served is remembered so that its paid answer teaches.

        A best entry alike but for a word that changes the question (minimal_pairs.differs)
        is refused and teaches nothing: the error bound is learned over the lookups it may
        serve, and such a lookup is never one of them."""
        scored = score(candidates)
        if scored is None:
            return Decision(entry=None, reason="no cached entry with these entities"), None
        pair = differs(seen.words, scored.entry.words)
        if pair is not None:
            return Decision(entry=None, reason=f"nearest entry is a minimal pair: {pair}"), None
        tenant, task_type = request.tenant, request.task_type
        calibrator = self._calibrators.of(tenant, task_type)
        if scored.entry.similarity >= policy.threshold:
            calibrator.lookup(scored.score)  # the traffic a threshold would serve from
        verdict = judge(
            scored,
            calibrator,
            error_bound=policy.error_bound,
            confidence=policy.confidence,
            entry_wrong_at=self._wrong_at.get((tenant, scored.entry.entry_id)),
            min_similarity=policy.threshold,
        )
        lookup = _remember(request, scored)
        if verdict.serve:
            return Decision(entry=scored.entry, reason=verdict.reason), lookup
        self._miss(request.id, lookup)
        return Decision(entry=None, reason=verdict.reason), None

    def _miss(self, request_id: str, lookup: Lookup) -> None:
        """Remember a lookup not served until its paid answer labels it (learn)."""
        self._missed[request_id] = lookup
        while len(self._missed) > PENDING:
            self._missed.popitem(last=False)

    async def observe(
        self, tenant: str, task_type: str, entry_id: str, at: float, correct: bool, source: str
    ) -> None:
        """Share one verified outcome (score at, right or wrong) with every replica."""
        observation = records.Observation(
            tenant=tenant,
            task_type=task_type,
            entry_id=entry_id,
            score=at,
            correct=correct,
            source=source,
        )
        try:
            await self._entries.observe(observation)
        except RedisError as exc:
            log.warning("semantic cache observation not shared: %s", exc)
            self._fold(records.encode(observation))  # this replica learns it at least

    def _fold(self, raw: bytes | None) -> None:
        observation = records.decode_observation(raw) if raw is not None else None
        if observation is None:
            return
        calibrator = self._calibrators.of(observation.tenant, observation.task_type)
        calibrator.observe(observation.score, observation.correct)
        if not observation.correct:
            key = (observation.tenant, observation.entry_id)
            self._wrong_at[key] = max(self._wrong_at.get(key, -1.0), observation.score)
            self._wrong_at.move_to_end(key)
            if len(self._wrong_at) > PENDING:
                self._wrong_at.popitem(last=False)


def _remember(request: LlmRequest, scored: Scored) -> Lookup:
    """The lookup of request whose best entry is scored, kept until its outcome is known."""
    return Lookup(
        tenant=request.tenant,
        task_type=request.task_type,
        entry_id=scored.entry.entry_id,
        answer_key=scored.entry.answer_key,
        score=scored.score,
    )


def served_hit(lookup: Lookup) -> records.ServedHit:
    """The served hit kept in Redis until its verdict (verify)."""
    return records.ServedHit(
        tenant=lookup.tenant,
        task_type=lookup.task_type,
        entry_id=lookup.entry_id,
        answer_key=lookup.answer_key,
        score=lookup.score,
    )
