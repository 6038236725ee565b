"""The replayed workload of bench/levers: real arrival, sizes and questions, FlipSync's shapes.

Derived once from ../shared/data into bench/data/levers_workload.json (see bench/data/README.md
for sources and licences) by ``python -m bench.levers_workload``; the bench reads only that
sample. Two interleaved streams:

- Seller chat (task type seller_chat, interactive): the first CHAT_ROWS requests of the
  Mooncake conversation trace of at most MAX_INPUT_TOKENS, in arrival order. Each request's
  512-token prompt blocks become its prompt: block 0 (shared by every request) is the support
  system prompt, each other block a past user turn (a banking77 question) with the assistant's
  answer, the last block the current question. Shared blocks give the real prefix reuse of
  multi-turn chats. Every request carries the agent's toolbox; it needs it only when its
  question's banking77 intent is an account action (ACTION_INTENTS, our labelling). A share of
  answered turns get a trivial follow-up ("thanks!") TRIVIAL_DELAY_MS later (TRIVIAL_SHARE: our
  assumption, no data set has them).
- Listing uploads (standard priority): the first UPLOAD_ROWS requests of the Azure
  conversation trace give arrival times and, through ContextTokens, the size of the seller's
  notes. Each upload is one of PRODUCTS products drawn Zipf(ZIPF_S) (re-uploads and repeat
  listings: our assumption), and is processed by one workflow per marketplace at once: each
  asks the same product analysis (product_analysis) and its own market data (market_data).
"""

from __future__ import annotations

import csv
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.levers_prompts import (
    ANALYSIS,
    HOUSE_RULES,
    MARKET_RULES,
    PRICE,
    SUPPORT_PROMPT,
    TOOLBOX,
    filler,
)
from bus.messages import ChatMessage, LlmRequest, Priority

DATA = Path(__file__).parent / "data" / "levers_workload.json"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CHAT_ROWS, UPLOAD_ROWS, QUERIES = 150, 120, 400
MAX_INPUT_TOKENS = 100_000
"""Longer trace rows are left out: with tools and an answer they overflow a 128k context."""
PRODUCTS, ZIPF_S = 60, 1.1
MARKETPLACES = ("ebay", "amazon", "etsy", "shopify")
TRIVIAL_SHARE, TRIVIAL_DELAY_MS = 0.08, 4000
TRIVIAL_TURNS = ("thanks!", "ok, done", "Thank you so much", "great, thanks", "ok thanks, bye")
ACTION_INTENTS = frozenset(
    {
        "card_arrival", "lost_or_stolen_card", "cancel_transfer", "pending_transfer",
        "transfer_not_received_by_recipient", "pending_card_payment", "request_refund",
        "declined_card_payment", "card_not_working", "pending_cash_withdrawal",
        "balance_not_updated_after_bank_transfer", "pin_blocked", "terminate_account",
        "compromised_card", "direct_debit_payment_not_recognised", "card_swallowed",
    }
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Arrival:
    """One request and when it arrives, in ms from the start of the trace."""

    at_ms: float
    request: LlmRequest


def derive() -> dict[str, Any]:
    """The sample the bench replays, cut from ../shared/data."""
    with (SHARED / "llm_traces" / "mooncake_conversation_trace.jsonl").open() as f:
        traced = (json.loads(line) for line in f)
        fitting = (r for r in traced if r["input_length"] <= MAX_INPUT_TOKENS)
        chat = [r for _, r in zip(range(CHAT_ROWS), fitting, strict=False)]
    with (SHARED / "llm_traces" / "AzureLLMInferenceTrace_conv.csv").open() as f:
        uploads = [row for _, row in zip(range(UPLOAD_ROWS), csv.DictReader(f), strict=False)]
    with (SHARED / "banking77" / "train.csv").open() as f:
        rows = list(csv.DictReader(f))
    queries = random.Random(77).sample(rows, QUERIES)
    first = _azure_ms(uploads[0]["TIMESTAMP"])
    return {
        "chat": [
            {"t_ms": r["timestamp"], "blocks": r["hash_ids"], "output": r["output_length"]}
            for r in chat
        ],
        "uploads": [
            {"t_ms": _azure_ms(r["TIMESTAMP"]) - first, "context_tokens": int(r["ContextTokens"])}
            for r in uploads
        ],
        "queries": [{"text": q["text"], "intent": q["category"]} for q in queries],
    }


def _azure_ms(stamp: str) -> float:
    clock = stamp.split(" ")[1]
    hours, minutes, seconds = clock.split(":")
    return (int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000


def load() -> dict[str, Any]:
    """The committed sample."""
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


AGENTS = frozenset({"seller_chat", "product_analysis", "market_data"})


def arrivals(data: dict[str, Any], span_ms: float | None = None) -> list[Arrival]:
    """Every request of the workload with its arrival time, in order.

    With span_ms, each of the two streams is compressed (or stretched) to last span_ms.
    """
    queries = data["queries"]
    out: list[Arrival] = []
    rng = random.Random(3)
    chat_scale = _scale(span_ms, data["chat"][-1]["t_ms"])
    upload_scale = _scale(span_ms, data["uploads"][-1]["t_ms"])
    for i, row in enumerate(data["chat"]):
        blocks: list[int] = row["blocks"]
        tenant = f"seller{(blocks[1] if len(blocks) > 1 else i) % 6}"
        messages = [ChatMessage(role="system", content=SUPPORT_PROMPT)]
        for block in blocks[1:-1]:
            messages.append(ChatMessage(role="user", content=queries[block % len(queries)]["text"]))
            messages.append(ChatMessage(role="assistant", content=filler(block, 490)))
        question = queries[blocks[-1] % len(queries)]
        messages.append(ChatMessage(role="user", content=question["text"]))
        needs = question["intent"] in ACTION_INTENTS
        at = row["t_ms"] * chat_scale
        out.append(Arrival(at_ms=at, request=_chat(f"c{i}", tenant, messages, needs)))
        if rng.random() < TRIVIAL_SHARE:
            closer = [
                *messages,
                ChatMessage(role="assistant", content=filler(blocks[-1], 120)),
                ChatMessage(role="user", content=rng.choice(TRIVIAL_TURNS)),
            ]
            later = at + TRIVIAL_DELAY_MS * chat_scale
            out.append(Arrival(at_ms=later, request=_chat(f"c{i}x", tenant, closer, False)))
    weights = [1 / (k + 1) ** ZIPF_S for k in range(PRODUCTS)]
    sizes: dict[int, int] = {}
    for i, row in enumerate(data["uploads"]):
        product = rng.choices(range(PRODUCTS), weights)[0]
        size = sizes.setdefault(product, min(int(row["context_tokens"]), 3000))
        out += _upload(f"u{i}", row["t_ms"] * upload_scale, product, size)
    return sorted(out, key=lambda a: a.at_ms)


def _scale(span_ms: float | None, last_ms: float) -> float:
    return span_ms / last_ms if span_ms and last_ms > 0 else 1.0


def _chat(rid: str, tenant: str, messages: list[ChatMessage], needs_tools: bool) -> LlmRequest:
    return LlmRequest(
        id=rid,
        tenant=tenant,
        agent="seller_chat",
        task_type="seller_chat",
        messages=messages,
        max_output_tokens=1000,
        priority=Priority.INTERACTIVE,
        tools=TOOLBOX,
        needs_tools=needs_tools,
    )


def _upload(rid: str, at_ms: float, product: int, size: int) -> list[Arrival]:
    tenant = f"seller{product % 6}"
    notes = f"Product {product}: " + filler(1000 + product, size)
    analysis = [
        ChatMessage(role="system", content=HOUSE_RULES),
        ChatMessage(role="user", content=f"Seller's notes:\n{notes}"),
    ]
    out = []
    for market in MARKETPLACES:
        out.append(Arrival(at_ms=at_ms, request=_listing(f"{rid}{market}a", tenant, analysis)))
        title = f"Product {product}: " + filler(2000 + product, 12)
        prices = [
            ChatMessage(role="system", content=MARKET_RULES),
            ChatMessage(role="user", content=f"Marketplace: {market}\nProduct: {title}"),
        ]
        out.append(Arrival(at_ms=at_ms, request=_listing(f"{rid}{market}m", tenant, prices)))
    return out


def _listing(rid: str, tenant: str, messages: list[ChatMessage]) -> LlmRequest:
    analysis = rid.endswith("a")
    return LlmRequest(
        id=rid,
        tenant=tenant,
        agent="product_analysis" if analysis else "market_data",
        task_type="product_analysis" if analysis else "market_data",
        messages=messages,
        output_schema=ANALYSIS if analysis else PRICE,
        max_output_tokens=2000 if analysis else 1000,
    )


if __name__ == "__main__":
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(derive(), separators=(",", ":")) + "\n")
    sys.stdout.write(f"wrote {DATA} ({DATA.stat().st_size} bytes)\n")
