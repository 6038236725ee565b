"""Uploads, agent runs, checkpoints and workflow progress: the product's journey."""

from __future__ import annotations

import msgspec

from bus.messages.base import WIRE_VERSION, now_ms
from bus.messages.llm import Lever, Priority


class PhotoRendition(msgspec.Struct, kw_only=True):
    """A resized copy of a photo in the object store, the one sent to models at one detail."""

    object_name: str
    content_type: str = "image/jpeg"
    width: int
    height: int


class Photo(msgspec.Struct, kw_only=True):
    """A product photo kept in the JetStream object store, by name."""

    object_name: str
    content_type: str = "image/png"
    width: int = 0
    height: int = 0
    phash: str = ""
    """Perceptual hash plus a coarse colour hash: equal for the same picture re-encoded or
    resized, so its analyses are reused (per tenant) instead of paid for again."""
    renditions: dict[str, PhotoRendition] = {}
    """Resized copies by image detail ("low", "high"); what agents send instead of the original."""


class ProductUploaded(msgspec.Struct, kw_only=True):
    """A seller uploaded a product: the start of one workflow (and one trace).

    Published on product.uploaded.<tenant> (stream WORKFLOW) after its photos are in the
    photos object store; any client may publish it there to start a workflow.
    """

    workflow_id: str
    tenant: str
    product_id: str
    title_hint: str = ""
    notes: str = ""
    cost_price: str = ""
    """What the seller paid, as a decimal string, for margin work; empty if unknown."""
    photos: list[Photo] = []
    priority: Priority = Priority.STANDARD
    attributes: dict[str, str] = {}
    """Further facts the seller gave (weight_g, size, sku, quantity...), as text."""
    uploaded_ms: int = msgspec.field(default_factory=lambda: now_ms())
    v: int = WIRE_VERSION


class RunAgent(msgspec.Struct, kw_only=True):
    """The workflow tells an agent that its inputs exist and it may run."""

    workflow_id: str
    tenant: str
    agent: str
    attempt: int = 1
    v: int = WIRE_VERSION


class AgentCheckpoint(msgspec.Struct, kw_only=True):
    """One agent's finished work for one workflow, kept in the checkpoint bucket."""

    workflow_id: str
    agent: str
    ok: bool
    output: dict[str, object] = {}
    reason: str = ""
    request_ids: list[str] = []
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    call_free_baseline_micro_usd: int = 0
    """The part of baseline_micro_usd no paid call booked (a zero-call agent's output, reused
    photo analyses): the workflow books it in the ledger only when the workflow succeeds."""
    llm_calls: int = 0
    """Paid provider calls this agent made (0 for zero-call agents and cache hits)."""
    tenant: str = ""
    lever: Lever = Lever.NONE
    """What served its output: its last answer's lever (routed, exact_cache, dedup...),
    zero_call for code, photo_dedup when every photo's analysis was reused."""
    simulated: bool = False
    """Its answer came from the simulated provider (placeholder text)."""
    v: int = WIRE_VERSION


class UploadCheckpoint(msgspec.Struct, kw_only=True):
    """The upload a workflow started from, kept so agents and a resumed workflow can read it."""

    upload: ProductUploaded
    v: int = WIRE_VERSION


class AgentDone(msgspec.Struct, kw_only=True):
    """An agent finished (or failed) for one workflow; its output is in the checkpoint store."""

    workflow_id: str
    tenant: str
    agent: str
    ok: bool
    reason: str = ""
    cost_micro_usd: int = 0
    baseline_micro_usd: int = 0
    v: int = WIRE_VERSION


class WorkflowProgress(msgspec.Struct, kw_only=True):
    """How far one upload has come, for a progress bar or a page."""

    workflow_id: str
    tenant: str
    product_id: str
    done: int
    total: int
    last_agent: str
    v: int = WIRE_VERSION


class WorkflowDone(msgspec.Struct, kw_only=True):
    """A workflow ended: ok with the assembled listing, or failed with a reason."""

    workflow_id: str
    tenant: str
    product_id: str
    ok: bool
    reason: str = ""
    listing: dict[str, object] = {}
    missing: list[str] = []
    """Optional agents that failed and whose part of the listing is missing."""
    cost_micro_usd: int = 0
    """Every paid call of the workflow, whether or not it succeeded."""
    baseline_micro_usd: int = 0
    """The naive baseline booked for it: a failed workflow's holds only the answers its paid
    calls delivered, never its call-free work (which is booked only for a finished listing)."""
    served_by: dict[str, int] = {}
    """How many of its agents' outputs each lever served (routed, exact_cache, zero_call...),
    so that a product that cost nothing can say why."""
    simulated: bool = False
    """Some of its agents' answers came from the simulated provider: the listing is
    placeholder text, and whoever shows it says so (a client of a deployment cannot tell
    otherwise)."""
    v: int = WIRE_VERSION


class WorkflowState(msgspec.Struct, kw_only=True):
    """Which agents of one workflow have settled, kept in the checkpoint bucket.

    Updated by compare-and-set on each agent-done event, so the workflow service reads one
    small value per event instead of every checkpoint of the workflow.
    """

    workflow_id: str
    tenant: str
    product_id: str = ""
    ok: list[str] = []
    failed: list[str] = []
    cancelled: bool = False
    """Its upload was interrupted (Ctrl-C, --timeout): no agent of it runs again."""
    v: int = WIRE_VERSION


class PhotoAnalysis(msgspec.Struct, kw_only=True):
    """One agent's analysis of one photo, kept per tenant by perceptual hash for reuse.

    A pending entry is a claim: another workflow analysing the same photo right now.
    """

    pending: bool = False
    claimed_ms: int = 0
    output: dict[str, object] = {}
    workflow_id: str = ""
    request_id: str = ""
    baseline_micro_usd: int = 0
    """The naive cost of analysing this photo again, credited when it is reused."""
    v: int = WIRE_VERSION
