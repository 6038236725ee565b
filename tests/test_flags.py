"""Feature flags at run time: a change through flags.control reaches the running router
without a restart, switches a lever off, sets the model, and records the arm in the ledger."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from bus.broker import make_broker
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.llm_client import LlmClient
from bus.messages import ChatMessage, FlagRule, Lever, LlmRequest, PromptPatch
from bus.settings import Settings
from flipsync.stack import Stack
from optimizer import keys
from optimizer.cli import add_commands, run_command
from optimizer.flag_store import FlagStore, publish_change
from router.flags.decide import apply_prompt
from router.flags.live import LiveFlags
from tests.helpers import eventually, make_request, router_stack


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """An embedded stack with the router and the ledger."""
    async with router_stack() as running:
        yield running


def thanks(tenant: str) -> LlmRequest:
    """A trivial seller-chat turn the pattern responder answers."""
    return LlmRequest(
        id=uuid.uuid4().hex,
        tenant=tenant,
        agent="listing",
        task_type="seller_chat",
        messages=[ChatMessage(role="user", content="ok, thanks!")],
    )


async def flip(stack: Stack, *rules: FlagRule, removed: tuple[str, ...] = ()) -> None:
    """Change the flags as `flipsync flags set` does: Redis, then the control subject."""
    change = await FlagStore(stack.redis).change(set_rules=rules, removed=removed, by="test")
    await publish_change(stack.broker.connection, change)


async def test_a_flag_switches_a_lever_off_at_run_time(stack: Stack) -> None:
    tenant = f"f{uuid.uuid4().hex[:8]}"
    client = LlmClient(stack.broker)
    assert (await client.request(thanks(tenant), 10)).lever is Lever.PATTERN
    off = FlagRule(name=f"no-pattern-{tenant}", tenant=tenant, disable_levers=[Lever.PATTERN])
    await flip(stack, off)

    async def switched_off() -> bool:
        result = await client.request(thanks(tenant), 10)
        return result.ok and result.lever is Lever.ROUTED and result.cost_micro_usd > 0

    await eventually(switched_off, timeout_s=10)
    other = f"g{uuid.uuid4().hex[:8]}"  # another tenant keeps the lever
    assert (await client.request(thanks(other), 10)).lever is Lever.PATTERN
    await flip(stack, removed=(off.name,))

    async def back_on() -> bool:
        return (await client.request(thanks(tenant), 10)).lever is Lever.PATTERN

    await eventually(back_on, timeout_s=10)


async def test_a_flag_switches_the_exact_cache_off(stack: Stack) -> None:
    tenant = f"c{uuid.uuid4().hex[:8]}"
    client = LlmClient(stack.broker)
    text = f"Write a title for mug {tenant}."
    first = await client.request(make_request(tenant=tenant, agent="listing", text=text), 10)
    again = await client.request(make_request(tenant=tenant, agent="listing", text=text), 10)
    assert first.lever is Lever.ROUTED and again.lever is Lever.EXACT_CACHE
    await flip(
        stack,
        FlagRule(
            name=f"no-cache-{tenant}",
            tenant=tenant,
            disable_levers=[Lever.EXACT_CACHE, Lever.SEMANTIC_CACHE],
        ),
    )

    async def uncached() -> bool:
        result = await client.request(make_request(tenant=tenant, agent="listing", text=text), 10)
        return result.lever is Lever.ROUTED

    await eventually(uncached, timeout_s=10)


async def test_an_arm_sets_the_model_and_is_in_the_ledger_event(stack: Stack) -> None:
    tenant = f"m{uuid.uuid4().hex[:8]}"
    rule = FlagRule(name=f"nano-{tenant}", tenant=tenant, model="gpt-4.1-nano", arm="exp1/nano")
    await flip(stack, rule)
    client = LlmClient(stack.broker)

    async def on_nano() -> bool:
        request = make_request(tenant=tenant, agent="listing", text=uuid.uuid4().hex)
        result = await client.request(request, 10)
        return result.model == "gpt-4.1-nano" and result.arm == "exp1/nano"

    await eventually(on_nano, timeout_s=10)


def test_a_prompt_patch_replaces_system_prompt_instructions_and_schema() -> None:
    request = make_request(text="Write a catchy title, please make sure it is short. Inputs: x")
    request = msgspec.structs.replace(
        request, messages=[ChatMessage(role="system", content="Long system."), *request.messages]
    )
    patch = PromptPatch(
        system="Short.",
        find="Write a catchy title, please make sure it is short.",
        replace="Write a short catchy title.",
        output_schema={"type": "object", "properties": {}, "required": []},
    )
    patched = apply_prompt(request, patch)
    assert patched.messages[0].content == "Short."
    assert patched.messages[1].content == "Write a short catchy title. Inputs: x"
    assert patched.output_schema is not None and patched.output_schema.schema["required"] == []
    assert request.messages[0].content == "Long system."  # the original is untouched


async def test_replicas_reload_on_the_control_subject_alone(
    nats_server: EmbeddedNats, redis_client: aioredis.Redis
) -> None:
    """Two replicas that never poll (refresh once an hour) see a change within moments."""
    replicas = [LiveFlags(redis_client, refresh_s=3600) for _ in range(2)]
    brokers = []
    for live in replicas:
        broker = make_broker(nats_server.url)
        broker.include_router(live.control_router())
        await broker.start()
        brokers.append(broker)
    try:
        request = make_request(tenant="t9")
        for live in replicas:
            assert (await live.current()).decide(request) is None  # loaded: no rules
        rule = FlagRule(name="t9-off", tenant="t9", disable_levers=[Lever.DEDUP])
        change = await FlagStore(redis_client).change(set_rules=[rule])
        await publish_change(brokers[0].connection, change)

        async def applied() -> bool:
            decisions = [(await live.current()).decide(request) for live in replicas]
            return all(d is not None and d.disabled == {Lever.DEDUP} for d in decisions)

        await eventually(applied, timeout_s=5)
    finally:
        for broker in brokers:
            await broker.stop()


async def test_a_failing_background_check_is_logged_and_the_next_one_reloads(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveFlags(redis_client, refresh_s=0)
    request = make_request(tenant="t8")
    assert (await live.current()).decide(request) is None  # the first load
    await redis_client.set(keys.FLAGS_REV, "not-a-number")  # rev() raises ValueError
    await live.current()
    failing = live._refreshing
    assert failing is not None
    await asyncio.wait([failing])
    assert failing.exception() is None  # logged, not left on the task unretrieved
    assert "flags not reloaded" in caplog.text
    await redis_client.delete(keys.FLAGS_REV)
    rule = FlagRule(name="t8-off", tenant="t8", disable_levers=[Lever.DEDUP])
    await FlagStore(redis_client).change(set_rules=[rule])

    async def reloaded() -> bool:
        decision = (await live.current()).decide(request)
        return decision is not None and decision.disabled == {Lever.DEDUP}

    await eventually(reloaded, timeout_s=5)


async def test_the_flags_and_experiment_commands_change_and_list_rules(
    nats_server: EmbeddedNats,
    redis_client: aioredis.Redis,
    redis_server: EmbeddedRedis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    settings = Settings(nats_url=nats_server.url, redis_url=redis_server.url)

    async def run(*argv: str) -> int:
        return await run_command(parser.parse_args(argv), settings)

    assert await run("flags", "set", "cli-off", "--tenant", "t7", "--disable", "dedup") == 0
    assert await run("flags", "list") == 0
    listed = capsys.readouterr().out
    assert "cli-off: {'tenant': 't7', 'percent': 100.0, " in listed
    assert "'disable_levers': ['dedup']}" in listed
    assert await run("experiment", "start", "cli", "--arm", "a=10", "--arm", "b=x") == 2
    assert "bad arm 'b=x'" in capsys.readouterr().err
    assert await run("experiment", "report", "no-such") == 2  # a name that is not there: usage
    assert "no experiment named 'no-such'" in capsys.readouterr().err
    assert await run("experiment", "start", "cli", "--arm", "a=10", "--arm", "b=10,off=dedup") == 0
    rules = {rule.name: rule for rule in await FlagStore(redis_client).rules()}
    assert rules["exp:cli:b"].disable_levers == [Lever.DEDUP]
    assert await run("flags", "remove", "cli-off") == 0
    assert "cli-off" not in {rule.name for rule in await FlagStore(redis_client).rules()}
    assert await run_command(parser.parse_args(["flags", "list"]), Settings()) == 2
