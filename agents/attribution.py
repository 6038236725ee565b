"""Ledger events for work that made no paid call, so that every saved dollar is attributed.

A zero-call agent's output, and a photo analysis reused by perceptual hash, cost nothing;
the naive path would have paid a premium-model call for each. The agent runtime prices it
(none for a call the naive path could not have made), and the workflow service books it
once the workflow succeeded (agents.workflow): one LedgerEvent per agent (cost 0, its
baseline, lever zero_call or photo_dedup, paid_call false) with a stable event id, so the
ledger counts it once however often the workflow's end is replayed. A failed workflow books
none: it delivered nothing that saved a call.
"""

from __future__ import annotations

from faststream.nats import NatsBroker

from agents.prompting import NaiveCall
from agents.spec import AgentSpec
from bus import subjects
from bus.codec import encode
from bus.messages import LedgerEvent, Lever, Usage, now_ms
from bus.publishing import publish
from cost_ledger.catalog import PriceCatalog
from cost_ledger.pricing import baseline_micro_usd


def call_free_lever(spec: AgentSpec) -> Lever:
    """The lever of an agent's call-free work: zero_call for code, photo_dedup for photos."""
    return Lever.ZERO_CALL if spec.compute is not None else Lever.PHOTO_DEDUP


class Attribution:
    """Prices the naive baseline of call-free work and books it in the ledger."""

    def __init__(
        self,
        broker: NatsBroker,
        catalog: PriceCatalog,
        baseline_model: str,
        *,
        max_request_bytes: int,
    ) -> None:
        self._broker = broker
        self._catalog = catalog
        self._baseline_model = baseline_model
        self._max_request_bytes = max_request_bytes

    def baseline(self, call: NaiveCall) -> int:
        """What call costs on the naive path's premium model; 0 for a call the naive path
        could not have made, so that no saving is claimed against it: larger than the router
        takes (Settings.max_request_bytes) or past the premium model's context window (the
        check routing makes, ModelPrice.fits)."""
        if call.prompt_bytes > self._max_request_bytes:
            return 0
        if not self._catalog.get(self._baseline_model).fits(
            call.input_tokens, call.max_output_tokens
        ):
            return 0
        usage = Usage(input_tokens=call.input_tokens, output_tokens=call.output_tokens)
        return baseline_micro_usd(self._catalog, self._baseline_model, usage)

    async def book(
        self,
        *,
        tenant: str,
        agent: str,
        workflow_id: str,
        task_type: str,
        lever: Lever,
        baseline_micro_usd: int,
    ) -> None:
        """Publish the ledger event of one agent's call-free work in one workflow."""
        event_id = f"{workflow_id}-{agent}-{lever.value}"
        at = now_ms()
        event = LedgerEvent(
            event_id=event_id,
            request_id=event_id,
            tenant=tenant,
            agent=agent,
            workflow_id=workflow_id,
            task_type=task_type,
            model="",
            provider="",
            usage=Usage(),
            cost_micro_usd=0,
            baseline_micro_usd=baseline_micro_usd,
            lever=lever,
            catalog_version=self._catalog.version,
            paid_call=False,
            started_ms=at,
            finished_ms=at,
        )
        await publish(
            self._broker,
            encode(event),
            subjects.ledger(tenant),
            stream=subjects.STREAM_LEDGER,
            msg_id=event_id,
        )
