"""The declarative agent spec: everything that makes one agent different from another."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bus.messages import Priority, TaskType

UPLOAD = "upload"
"""The input name of the seller's upload itself (notes, photos, cost price)."""
STATE = "state"
"""Reserved checkpoint name: the workflow's settled agents."""
PACKAGE = "package"
"""Reserved checkpoint name: the assembled listing package of a finished workflow."""
RESERVED = frozenset({UPLOAD, STATE, PACKAGE})

Inputs = Mapping[str, Mapping[str, Any]]
"""An agent's inputs: the upload and the outputs of the agents it consumes, by name."""
Output = dict[str, Any]
Compute = Callable[[Inputs], Output]
Validator = Callable[[Output, Inputs], list[str]]
"""Returns the problems of an output (empty when it is valid)."""


class Family(enum.StrEnum):
    """What part of the seller's work an agent belongs to."""

    IMAGE = "image"
    COPY = "copy"
    MARKET = "market"
    PRICING = "pricing"
    OPERATIONS = "operations"


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    """One agent: what it consumes, how it asks the model, and what a valid output is."""

    name: str
    family: Family
    consumes: tuple[str, ...]
    """Inputs it cannot run without: UPLOAD and/or other agents."""
    optional: tuple[str, ...] = ()
    """Inputs it waits for and uses when they succeed, and runs without when they fail."""
    instructions: str = ""
    """The static task prompt, sent first so providers' prompt caching applies. A zero-call
    agent's says what a naive agent would have asked a model (its baseline)."""
    output_schema: dict[str, Any] | None = None
    """The JSON schema of the output (of one photo's analysis, for a per-photo agent)."""
    task_type: TaskType = TaskType.PRODUCT_ANALYSIS
    priority: Priority = Priority.STANDARD
    max_output_tokens: int = 400
    uses_images: bool = False
    """A per-photo agent: each photo is analysed once (per tenant and perceptual hash), the
    photos not seen before in one call, and the output is {"photos": [analysis...]}."""
    image_detail: str = "low"
    required: bool = True
    """A required agent that fails fails the workflow; an optional one leaves a gap."""
    validators: tuple[Validator, ...] = ()
    compute: Compute | None = None
    """Plain code that produces the output: such a zero-call agent never asks a model."""
    upload_fields: tuple[str, ...] = ("title_hint", "notes", "attributes")
    """What the agent sees of the upload: only what changes its answer, so that repeats of
    a product by one seller ask identical questions (and hit the exact cache)."""
    listing_key: str = ""
    """Where the output goes in the assembled listing (default: the agent's name)."""
    interactive: bool = False
    """Run on demand (seller chat), not as part of the product workflow."""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def needs_llm(self) -> bool:
        """Whether the agent asks a model (False for zero-call agents)."""
        return self.compute is None

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every input it waits for: required ones, then optional ones."""
        return self.consumes + self.optional

    def problems(self) -> list[str]:
        """What is wrong with the spec itself."""
        issues: list[str] = []
        structured = self.output_schema is not None or self.interactive
        if self.compute is None and (not self.instructions or not structured):
            issues.append(f"{self.name}: an LLM agent needs instructions and an output schema")
        if self.name in RESERVED or self.name in self.inputs:
            issues.append(f"{self.name}: an agent cannot consume itself or use a reserved name")
        if len(set(self.inputs)) != len(self.inputs):
            issues.append(f"{self.name}: an input is named twice")
        if UPLOAD in self.optional:
            issues.append(f"{self.name}: the upload is always there; consume it, not optionally")
        if self.uses_images and (UPLOAD not in self.consumes or self.compute is not None):
            issues.append(f"{self.name}: a per-photo agent asks a model and consumes the upload")
        if self.image_detail not in ("low", "high"):
            issues.append(f"{self.name}: image_detail must be low or high")
        if self.output_schema is not None and self.output_schema.get("type") != "object":
            issues.append(f"{self.name}: the output schema must describe an object")
        return issues
