"""`make demo` as a newcomer runs it (the README's first command): every sample product's
listings read as that product's (its own words, sane prices), marked simulated, the cost
report at the end, and the demo's data still there for `flipsync chat --tenant demo`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

HANG_GUARD_S = 600
"""A demo still running after this long is a hang (not a timing check)."""
NOUNS = {
    "mug-001": "mug",
    "sneaker-002": "shoes",
    "lamp-003": "lamp",
    "jacket-004": "jacket",
    "board-005": "board",
    "camera-006": "camera",
}
"""Each sample product and the word its titles must carry (and no other product may)."""


def flipsync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    env.pop("FLIPSYNC_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "flipsync", *args],
        env={**env, "FLIPSYNC_SIM_LATENCY_MS": "0"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )


def listing_blocks(stdout: str) -> dict[str, str]:
    """Each product's summary block of the demo's output, by product id."""
    found = re.findall(r"^(\S+) \(workflow \w+\)\n((?:  .*\n)+)", stdout, flags=re.M)
    return {product: body for product, body in found}


@pytest.mark.slow
def test_the_demo_reads_like_listings_and_its_data_outlives_it(tmp_path: Path) -> None:
    demo = flipsync("demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr
    out = demo.stdout
    assert out.startswith("FlipSync demo - SIMULATED provider (no real calls, no money spent)")
    blocks = listing_blocks(out)
    assert set(blocks) == set(NOUNS), out
    for product, body in blocks.items():
        price = re.search(r"price +\$([\d.]+) \(quick sale \$([\d.]+)\)", body)
        assert price, body
        listed, quick = Decimal(price[1]), Decimal(price[2])
        assert 0 < quick <= listed, body
        titles = re.findall(r"^  (?:eBay|Amazon|Etsy|Shopify) +(.+)$", body, flags=re.M)
        assert len(titles) == 4, body
        for title in titles:
            words = title.lower()
            assert NOUNS[product] in words, (product, title)
            others = [n for p, n in NOUNS.items() if p != product and re.search(rf"\b{n}\b", words)]
            assert others == [], (product, title)  # no other product's words
        assert re.search(r"cost +\$[\d.]+ vs naive \$[\d.]+: saved [\d.]+% simulated", body)
        assert "  SIMULATED  placeholder text from the simulated provider" in body  # a reader
        # of the listing text is told it is not a model's work
        assert (tmp_path / "listings" / "demo" / product / "package.json").is_file()
    assert "FlipSync cost report: tenant demo" in out
    assert "covers every demo run" not in out  # a first run on fresh data: its own report
    assert "[simulated provider: placeholder text] " in out  # the seller chat's answer
    assert "SIMULATED provider: no real money was spent" in out
    # The spend lines come after the seller chat, and the report holds the chat's call too.
    products = re.search(r"^cost \$([\d.]+) for 6 products vs naive \$", out, flags=re.M)
    chat_line = r"^seller chat cost \$([\d.]+) vs naive \$[\d.]+ \(simulated"
    chat_cost = re.search(chat_line, out, flags=re.M)
    spend = re.search(r"^Spend: +\$([\d.]+) ", out, flags=re.M)
    assert products and chat_cost and spend, out
    assert out.index("Seller chat") < products.start() < spend.start(), out
    # Calls of no product (the levers' own) are said, so that the lines add up to the spend.
    other = re.search(r"^levers' own calls \$([\d.]+) \(simulated\)", out, flags=re.M)
    listed = Decimal(products[1]) + Decimal(chat_cost[1]) + (Decimal(other[1]) if other else 0)
    assert Decimal(spend[1]) >= listed, out
    assert re.search(rf"seller_chat +│ +1 │ +1 │ +\${chat_cost[1]} │", out), out
    # The README: after `make demo`, `flipsync chat --tenant demo` knows the demo's products.
    chat = flipsync("chat", "--tenant", "demo", "Which mug do I sell?", cwd=tmp_path)
    assert chat.returncode == 0, chat.stderr
    assert "mug-001" in chat.stdout and "no answer" not in chat.stdout, chat.stdout
