"""Every agent spec: the workflow's (from which its DAG is derived) and the on-demand ones."""

from agents.spec import AgentSpec
from agents.specs import details, image, listing, market, operations, pricing
from agents.specs.chat import SELLER_CHAT

WORKFLOW_SPECS: tuple[AgentSpec, ...] = (
    *image.SPECS,
    *details.SPECS,
    *listing.SPECS,
    *market.SPECS,
    *pricing.SPECS,
    *operations.SPECS,
)
"""The agents that run for every uploaded product."""
INTERACTIVE_SPECS: tuple[AgentSpec, ...] = (SELLER_CHAT,)
"""The agents that run on a seller's request."""
ALL_SPECS: tuple[AgentSpec, ...] = WORKFLOW_SPECS + INTERACTIVE_SPECS

__all__ = ["ALL_SPECS", "INTERACTIVE_SPECS", "SELLER_CHAT", "WORKFLOW_SPECS"]
