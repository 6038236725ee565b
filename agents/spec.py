"""The declarative agent spec: everything that makes one agent different from another."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bus.messages import Priority

UPLOAD = "upload"
"""The input name of the seller's upload itself (notes, photos, cost price)."""

Inputs = Mapping[str, Mapping[str, Any]]
"""An agent's inputs: the upload and the outputs of the agents it consumes, by name."""
Output = dict[str, Any]
Compute = Callable[[Inputs], Output]
Validator = Callable[[Output, Inputs], list[str]]
"""Returns the problems of an output (empty when it is valid)."""


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    """One agent: what it consumes, how it asks the model, and what a valid output is."""

    name: str
    family: str
    """image, copy, market, pricing or operations."""
    consumes: tuple[str, ...]
    """Names of the inputs it needs: UPLOAD and/or other agents."""
    instructions: str = ""
    """The static task prompt, sent first so providers' prompt caching applies."""
    output_schema: dict[str, Any] | None = None
    task_type: str = "general"
    priority: Priority = Priority.STANDARD
    max_output_tokens: int = 400
    uses_images: bool = False
    image_detail: str = "low"
    required: bool = True
    """A required agent that fails fails the workflow; an optional one leaves a gap."""
    validators: tuple[Validator, ...] = ()
    compute: Compute | None = None
    """Plain code that produces the output: such a zero-call agent never asks a model."""
    listing_key: str = ""
    """Where the output goes in the assembled listing (default: the agent's name)."""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def needs_llm(self) -> bool:
        """Whether the agent asks a model (False for zero-call agents)."""
        return self.compute is None

    def problems(self) -> list[str]:
        """What is wrong with the spec itself."""
        issues: list[str] = []
        if self.compute is None and (not self.instructions or self.output_schema is None):
            issues.append(f"{self.name}: an LLM agent needs instructions and an output schema")
        if self.name == UPLOAD or self.name in self.consumes:
            issues.append(f"{self.name}: an agent cannot consume itself or be named {UPLOAD!r}")
        if self.uses_images and UPLOAD not in self.consumes:
            issues.append(f"{self.name}: uses images but does not consume the upload")
        return issues
