"""The seller-chat assistant: answers a seller's questions about their own products."""

from __future__ import annotations

from agents.spec import AgentSpec, Family, Inputs, Output
from bus.messages import Priority, TaskType

ANSWER_CHARS = 1200


def _answer_fits(output: Output, _inputs: Inputs) -> list[str]:
    answer = str(output.get("text", "")).strip()
    if not answer:
        return ["the answer is empty"]
    if len(answer) > ANSWER_CHARS:
        return [f"the answer is {len(answer)} characters, over {ANSWER_CHARS}"]
    return []


SELLER_CHAT = AgentSpec(
    name="seller_chat",
    family=Family.OPERATIONS,
    consumes=(),
    task_type=TaskType.SELLER_CHAT,
    priority=Priority.INTERACTIVE,
    interactive=True,
    instructions=(
        "You are the seller's assistant. Answer questions about the seller's own products "
        "and listings using only the listing facts given below; say so when they do not "
        "hold the answer. Be brief and concrete: prices, titles, marketplaces, what to fix."
    ),
    validators=(_answer_fits,),
    max_output_tokens=300,
)
