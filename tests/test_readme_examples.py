"""Every example of the README, run as written (against a running deployment, as the README
says they run with NATS_URL and REDIS_URL), checked for what the README says it does."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bus.settings import Settings
from flipsync.stack import ALL_SERVICES, Service, Stack, start_stack

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
KEY = "sk-readme-" + uuid.uuid4().hex
HANG_GUARD_S = 240


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks in a language."""
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands(prefix: str) -> list[list[str]]:
    """Every `flipsync ...` command line of the README's sh blocks starting with prefix,
    continuation lines joined and comments dropped."""
    found = []
    for block in blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(prefix):
                found.append(shlex.split(line))
    assert found, f"the README has no {prefix!r} example"
    return found


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """A whole deployment (every service and the HTTP API) on embedded servers."""
    settings = Settings(sim_latency_ms=0, api_port=0, api_keys={KEY: "default"})
    running = await start_stack(settings, [*ALL_SERVICES, Service.API])
    yield running
    await running.stop()


async def flipsync(stack: Stack, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a README command line (argv[0] is "flipsync") against the stack's servers."""
    assert argv[0] == "flipsync"
    env = {**os.environ, "NATS_URL": stack.nats_url, "REDIS_URL": stack.redis_url}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "flipsync", *argv[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )


async def test_the_openai_client_example_says_hi_without_a_paid_call(stack: Stack) -> None:
    (snippet,) = blocks("python")
    assert stack.api is not None
    code = snippet.replace("http://localhost:8080/v1", f"{stack.api.url}/v1")
    code = code.replace("<your FlipSync key>", KEY)
    code = code.replace(
        "client.chat.completions.create(", "raw = client.chat.completions.with_raw_response.create("
    )
    scope: dict[str, Any] = {}
    await asyncio.to_thread(exec, code, scope)  # noqa: S102 - the README's own example
    raw = scope["raw"]
    assert raw.headers["x-flipsync-lever"] == "pattern"  # "hi" is a trivial turn: no call
    assert (
        raw.headers["x-flipsync-cost-micro-usd"] == "0" and raw.parse().choices[0].message.content
    )


async def test_an_unknown_model_is_openais_404(stack: Stack) -> None:
    from openai import AsyncOpenAI, NotFoundError

    assert stack.api is not None
    async with AsyncOpenAI(base_url=f"{stack.api.url}/v1", api_key=KEY, max_retries=0) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.chat.completions.create(
                model="gpt-5-turbo-imaginary", messages=[{"role": "user", "content": "Title a mug"}]
            )
        assert caught.value.code == "model_not_found"
        dated = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini-2024-07-18", messages=[{"role": "user", "content": "hi"}]
        )
        assert dated.http_response.status_code == 200


async def test_the_experiment_walk_through(stack: Stack, tmp_path: Path) -> None:
    start, report, promote = commands("flipsync experiment")
    started = await flipsync(stack, start, tmp_path)
    assert started.returncode == 0, started.stderr
    watched = await flipsync(stack, [a for a in report if a not in ("--watch", "10")], tmp_path)
    assert watched.returncode == 0 and "listing-model" in watched.stdout, watched.stderr
    promoted = await flipsync(stack, promote, tmp_path)
    # No arm has its 150 samples yet: promotion is refused, as the README says, with why.
    assert promoted.returncode == 1 and "flipsync experiment:" in promoted.stderr
    wrong = [("ebay_listing" if a == "listing" else a) for a in start]
    wrong[wrong.index("ebay_listing")] = "listing"
    wrong[wrong.index("listing-model")] = "other-model"
    refused = await flipsync(stack, wrong, tmp_path)
    assert refused.returncode == 1 and "unknown agent 'listing'" in refused.stderr
    assert "ebay_listing" in refused.stderr  # the close matches are named


async def test_upload_then_chat_as_the_readme_shows(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "agents").symlink_to(ROOT / "agents")
    (upload,) = commands("flipsync upload")
    done = await flipsync(stack, upload, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "mug-001" in done.stdout and "saved" in done.stdout
    assert (tmp_path / "listings" / "default" / "mug-001" / "package.json").is_file()
    (chat,) = commands("flipsync chat")
    answered = await flipsync(stack, chat, tmp_path)
    assert answered.returncode == 0 and "no answer" not in answered.stdout, answered.stderr
