"""With NATS users per agent and tenant, a leaked agent credential reaches one tenant only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats.errors
import pytest

from bus import subjects
from bus.broker import make_broker
from bus.codec import encode
from bus.llm_client import LlmClient
from bus.messages import Status
from bus.nats_auth import agent_user, tenant_agent_user
from bus.settings import Settings
from flipsync.stack import Service, Stack, start_stack
from tests.helpers import make_request
from tests.test_nats_permissions import Conn, _connect

AGENT = "ebay_listing"
MINE, THEIRS = "acme", "globex"


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Embedded nats-server with per-tenant agent users; the router connects as "router"."""
    settings = Settings(
        nats_auth=True, nats_user="router", nats_tenants=frozenset({MINE, THEIRS}), sim_latency_ms=0
    )
    running = await start_stack(settings, [Service.PROVIDER, Service.ROUTER])
    yield running
    await running.stop()


@pytest.fixture
async def me(stack: Stack) -> AsyncIterator[Conn]:
    """A connection as the agent working for acme."""
    conn = await _connect(stack, tenant_agent_user(AGENT, MINE))
    yield conn
    await conn.nc.close()


async def test_the_agent_calls_for_its_own_tenant(stack: Stack) -> None:
    assert stack.nats_auth is not None
    user = tenant_agent_user(AGENT, MINE)
    broker = make_broker(stack.nats_url, **stack.nats_auth.broker_options(user))
    await broker.connect()
    try:
        result = await LlmClient(broker).request(
            make_request(tenant=MINE, agent=AGENT), timeout_s=15
        )
    finally:
        await broker.stop()
    assert result.status is Status.OK, result.reason


async def test_no_agent_user_serves_every_tenant(stack: Stack) -> None:
    assert stack.nats_auth is not None
    assert agent_user(AGENT) not in stack.nats_auth.passwords


async def test_another_tenants_subjects_are_refused(stack: Stack, me: Conn) -> None:
    theirs = subjects.llm_request(THEIRS, AGENT)
    await me.nc.publish(theirs, encode(make_request(tenant=THEIRS, agent=AGENT)))
    await me.refused(theirs)
    their_results = f"llm.result.{THEIRS}.{AGENT}.>"
    await me.nc.subscribe(their_results)
    await me.refused(their_results, "Subscription")
    other = subjects.llm_result(THEIRS, AGENT, uuid.uuid4().hex)
    direct = f"$JS.API.DIRECT.GET.{subjects.STREAM_RESULTS}.{other}"
    with pytest.raises(nats.errors.Error):
        await me.nc.request(direct, b"", timeout=1)
    await me.refused(direct)


async def test_its_own_subjects_are_not_refused(stack: Stack, me: Conn) -> None:
    mine = subjects.llm_request(MINE, AGENT)
    await me.nc.subscribe(f"llm.result.{MINE}.{AGENT}.>")
    control = subjects.llm_request(THEIRS, AGENT)  # refusals do arrive, so none means none
    await me.nc.publish(control, b"{}")
    # A JetStream publish is a round trip: every refusal of what came before has arrived.
    ack = await me.nc.jetstream().publish(mine, encode(make_request(tenant=MINE, agent=AGENT)))
    assert ack.stream == subjects.STREAM_REQUESTS
    assert len(me.errors) == 1 and THEIRS in me.errors[0], me.errors
