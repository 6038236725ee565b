"""NATS security: the server refuses what a user may not do, and the services work as their users.

An embedded stack started with FLIPSYNC_NATS_AUTH: the router runs as user "router", the ledger
as a second process-like stack as user "ledger", agents connect as "agent-<name>".
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from pydantic import SecretStr

from agents.catalog_file import load_catalog
from agents.specs import ALL_SPECS
from agents.upload import Uploader
from agents.watch import WorkflowWatcher
from bus import subjects
from bus.broker import make_broker
from bus.cli_nats import connect_cli
from bus.codec import encode
from bus.embedded import EmbeddedNats
from bus.llm_client import LlmClient
from bus.messages import BudgetAlert, ErrorCode, Status, error_result
from bus.nats_auth import ACCOUNT, agent_user, all_users, inbox_prefix, render_auth_conf
from bus.publishing import MSG_ID
from bus.settings import Settings
from cost_ledger.budgets.alerts import JetStreamAlerts
from cost_ledger.budgets.cli import add_commands as add_budget_commands
from cost_ledger.budgets.cli import run_command as run_budget_command
from flipsync.stack import Service, Stack, start_stack
from tests.helpers import eventually, make_request

AUTH_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nats" / "auth.conf"
ME = "ebay_listing"
OTHER = "etsy_listing"
CONTROL = subjects.product_uploaded("refusal-control")
"""A subject the router may not publish on: the control that proves refusals arrive."""


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    """Embedded nats-server with FlipSync's users; provider and router connected as "router"."""
    settings = Settings(nats_auth=True, nats_user="router", sim_latency_ms=0)
    running = await start_stack(settings, [Service.PROVIDER, Service.ROUTER])
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def ledger(stack: Stack) -> AsyncIterator[Stack]:
    """The ledger service on the same servers, connected as user "ledger"."""
    assert stack.nats_auth is not None
    settings = Settings(
        nats_url=stack.nats_url,
        redis_url=stack.redis_url,
        nats_user="ledger",
        nats_password=stack.nats_auth.passwords["ledger"],
    )
    running = await start_stack(settings, [Service.LEDGER])
    yield running
    await running.stop()


class Conn:
    """A raw nats-py connection as one user, keeping the errors the server sent it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc = Client()

    async def on_error(self, exc: Exception) -> None:
        """Error callback: the server's permission violations arrive here."""
        self.errors.append(str(exc))

    async def refused(self, subject: str, what: str = "Publish") -> None:
        """Wait until the server reports a permissions violation for subject."""
        needle = f'permissions violation for {what} to "{subject}"'.lower()

        async def reported() -> bool:
            return any(needle in error.lower() for error in self.errors)

        await self.nc.flush()
        await eventually(reported, timeout_s=3)


async def _connect(stack: Stack, user: str) -> Conn:
    assert stack.nats_auth is not None
    conn = Conn()
    await conn.nc.connect(
        stack.nats_url,
        error_cb=conn.on_error,
        max_reconnect_attempts=0,
        **stack.nats_auth.options(user),
    )
    return conn


@pytest.fixture
async def me(stack: Stack) -> AsyncIterator[Conn]:
    """A connection as the ebay_listing agent."""
    conn = await _connect(stack, agent_user(ME))
    yield conn
    await conn.nc.close()


@pytest.fixture
async def admin(stack: Stack) -> AsyncIterator[Client]:
    """A connection as admin, to look behind the users' backs."""
    conn = await _connect(stack, "admin")
    yield conn.nc
    await conn.nc.close()


async def _stored(admin: Client, stream: str, subject: str) -> bool:
    try:
        await admin.jetstream().get_last_msg(stream, subject)
    except nats.js.errors.NotFoundError:
        return False
    return True


def test_committed_auth_conf_is_up_to_date() -> None:
    """deploy/nats/auth.conf is what `flipsync nats-auth` writes today."""
    expected = render_auth_conf(all_users(spec.name for spec in ALL_SPECS))
    assert AUTH_CONF.read_text() == expected, "run `flipsync nats-auth` and commit the file"


async def test_wrong_password_is_refused(stack: Stack) -> None:
    nc = Client()
    with pytest.raises(nats.errors.Error):
        await nc.connect(
            stack.nats_url,
            user=agent_user(ME),
            password="not-the-password",
            max_reconnect_attempts=0,
            allow_reconnect=False,
            connect_timeout=2,
        )
    await nc.close()


async def test_agent_call_goes_through_router_and_ledger_as_their_users(
    stack: Stack, ledger: Stack
) -> None:
    """Allowed: an agent's own request, its result, and the ledger event the router books."""
    assert stack.nats_auth is not None
    tenant = f"t{uuid.uuid4().hex[:8]}"
    broker = make_broker(stack.nats_url, **stack.nats_auth.broker_options(agent_user(ME)))
    await broker.connect()
    try:
        client = LlmClient(broker)
        request = make_request(tenant=tenant, agent=ME)
        result = await client.request(request, timeout_s=15)
        assert result.status is Status.OK, result.reason
        again = await client.request(request, timeout_s=15)  # found by direct get, not re-asked
        assert again.request_id == result.request_id and again.status is Status.OK
    finally:
        await broker.stop()

    async def booked() -> bool:
        return (await ledger.aggregates.totals(tenant)).calls == 1

    await eventually(booked, timeout_s=10)


async def test_a_duplicate_ack_an_agent_may_not_check_counts_as_its_own_retry(
    stack: Stack,
) -> None:
    """Seen in CI: a retried request's duplicate ack made the client read the stored request
    by sequence, which an agent's user may not (it could read any tenant's); the read timed
    out after 5 s and the timeout was raised out of LlmClient.request. It cannot be told
    apart, as when the stored request is gone: counted as the agent's own retry."""
    assert stack.nats_auth is not None
    broker = make_broker(stack.nats_url, **stack.nats_auth.broker_options(agent_user(ME)))
    await broker.connect()
    try:
        assert await LlmClient(broker).same_as_stored(1, b"{}") is True
    finally:
        await broker.stop()


async def test_agent_may_not_publish_another_agents_requests(me: Conn, admin: Client) -> None:
    allowed = subjects.llm_request("t1", ME)
    ack = await me.nc.jetstream().publish(allowed, encode(make_request(agent=ME)))
    assert ack.stream == subjects.STREAM_REQUESTS

    forbidden = subjects.llm_request("t1", OTHER)
    await me.nc.publish(forbidden, encode(make_request(agent=OTHER)))
    await me.refused(forbidden)
    assert not await _stored(admin, subjects.STREAM_REQUESTS, forbidden)


async def test_only_the_router_and_workflow_may_publish_ledger_events(
    stack: Stack, me: Conn
) -> None:
    subject = subjects.ledger("t1")
    await me.nc.publish(subject, b"{}")
    await me.refused(subject)
    for user in ("ledger", "api", "agents"):
        conn = await _connect(stack, user)
        try:
            await conn.nc.publish(subject, b"{}")
            await conn.refused(subject)
        finally:
            await conn.nc.close()
    for user in ("router", "workflow"):  # paid calls; call-free work of finished workflows
        conn = await _connect(stack, user)
        try:
            await conn.nc.publish(subject, b"{}")
            await conn.nc.publish(CONTROL, b"{}")  # refusals do arrive, so none means none
            await _round_trip(conn)
            assert len(conn.errors) == 1, (user, conn.errors)
            assert f'publish to "{CONTROL}"' in conn.errors[0].lower()
        finally:
            await conn.nc.close()


async def test_only_the_router_may_publish_grade_alerts(stack: Stack, me: Conn) -> None:
    """The router grades answers and raises their alerts; no agent, API or ledger may."""
    subject = subjects.grade_alert("t1")
    await me.nc.publish(subject, b"{}")
    await me.refused(subject)
    for user in ("ledger", "api", "agents", "workflow"):
        conn = await _connect(stack, user)
        try:
            await conn.nc.publish(subject, b"{}")
            await conn.refused(subject)
        finally:
            await conn.nc.close()
    conn = await _connect(stack, "router")
    try:
        await conn.nc.publish(subject, b"{}")
        await conn.nc.publish(CONTROL, b"{}")  # refusals do arrive, so none means none
        await _round_trip(conn)
        assert len(conn.errors) == 1 and CONTROL in conn.errors[0], conn.errors
    finally:
        await conn.nc.close()


async def _round_trip(conn: Conn) -> None:
    """Flush, then a request/reply on an allowed subject (a JetStream API call): the server
    answers a connection in order, so every refusal of what it sent before has arrived."""
    await conn.nc.flush()
    await conn.nc.jetstream(timeout=2).account_info()


async def test_agent_reads_only_its_own_results(me: Conn, admin: Client) -> None:
    mine = await me.nc.subscribe(f"llm.result.*.{ME}.>")
    other_subject = f"llm.result.*.{OTHER}.>"
    theirs = await me.nc.subscribe(other_subject)
    await me.refused(other_subject, "Subscription")

    for agent in (ME, OTHER):
        result = error_result(uuid.uuid4().hex, "t1", agent, ErrorCode.PROVIDER_ERROR, "x")
        await admin.publish(subjects.llm_result("t1", agent, result.request_id), encode(result))
    assert (await mine.next_msg(timeout=2)).data
    with pytest.raises(nats.errors.TimeoutError):
        await theirs.next_msg(timeout=0.5)


async def test_agent_may_not_read_others_replies_or_results_through_jetstream(
    me: Conn, admin: Client
) -> None:
    """No snooping on inboxes, no consumer of its own on results, no direct get of others'."""
    for inbox in ("_INBOX.>", "_INBOX_router.>"):
        await me.nc.subscribe(inbox)
        await me.refused(inbox, "Subscription")

    other = subjects.llm_result("t1", OTHER, uuid.uuid4().hex)
    await admin.jetstream().publish(
        other, encode(error_result("r", "t1", OTHER, ErrorCode.PROVIDER_ERROR, "x"))
    )
    direct = f"$JS.API.DIRECT.GET.{subjects.STREAM_RESULTS}.{other}"
    with pytest.raises(nats.errors.Error):
        await me.nc.request(direct, b"", timeout=1)
    await me.refused(direct)

    with pytest.raises((nats.errors.Error, nats.js.errors.Error)):
        await me.nc.jetstream(timeout=1).pull_subscribe(
            other, "snoop", stream=subjects.STREAM_RESULTS
        )
    assert any("$js.api.consumer" in error.lower() for error in me.errors)


async def test_api_may_publish_uploads(stack: Stack) -> None:
    api = await _connect(stack, "api")
    try:
        subject = subjects.product_uploaded("t1")
        ack = await api.nc.jetstream().publish(subject, b"{}", headers={MSG_ID: uuid.uuid4().hex})
        assert ack.stream == subjects.STREAM_WORKFLOW
        await _round_trip(api)
        assert api.errors == []
    finally:
        await api.nc.close()


def _as_user(stack: Stack, user: str) -> Settings:
    assert stack.nats_auth is not None
    return Settings(
        nats_url=stack.nats_url,
        redis_url=stack.redis_url,
        nats_user=user,
        nats_password=stack.nats_auth.passwords[user],
        sim_base_url=stack.sim.base_url if stack.sim else None,
        pack_window_ms=50,
    )


async def test_an_upload_runs_end_to_end_with_every_service_as_its_own_user(
    stack: Stack, ledger: Stack
) -> None:
    """The permissions in auth.conf are enough for workflow, agents and api to do their work."""
    workflow = await start_stack(_as_user(stack, "workflow"), [Service.WORKFLOW])
    agents = await start_stack(_as_user(stack, "agents"), [Service.AGENTS])
    notifier = await start_stack(_as_user(stack, "notifier"), [Service.NOTIFIER])
    api_settings = _as_user(stack, "api")
    assert stack.nats_auth is not None
    api = make_broker(stack.nats_url, **stack.nats_auth.broker_options("api"))
    await api.connect()
    owner = f"t{uuid.uuid4().hex[:8]}"
    try:
        async with WorkflowWatcher(api, owner) as watcher:
            upload = await Uploader(api, api_settings).upload(load_catalog()[0], tenant=owner)
            done = (await watcher.wait([upload.workflow_id], timeout_s=60))[upload.workflow_id]
        # An alert reaches the notifier, which reads it as its own user (no target is set,
        # so it is handled and acked without a delivery).
        alert = BudgetAlert(
            scope=f"tenant:{owner}",
            period="day",
            threshold=0.8,
            limit_micro_usd=100,
            spent_micro_usd=80,
            budget="b",
            tenant=owner,
        )
        await JetStreamAlerts(ledger.broker)(alert, f"perm-{owner}")  # fmt: skip
        js = stack.broker.connection.jetstream()

        async def handled() -> bool:
            info = await js.consumer_info(subjects.STREAM_LEDGER, subjects.DURABLE_NOTIFIER)
            return bool(info.num_pending == 0 and info.num_ack_pending == 0)

        await eventually(handled, timeout_s=20)
    finally:
        await api.stop()
        await notifier.stop()
        await agents.stop()
        await workflow.stop()
    assert done.ok, done.reason
    assert 0 < done.cost_micro_usd < done.baseline_micro_usd

    async def booked() -> bool:
        return (await ledger.aggregates.totals(owner)).calls > 0

    await eventually(booked, timeout_s=10)
    assert _service_violations(stack) == []


def _service_violations(stack: Stack) -> list[str]:
    """Lines of the server log where a service's own user was refused something."""
    server = next(s for s in stack.embedded if isinstance(s, EmbeddedNats))
    log = server.log_path.read_text(errors="replace").splitlines()
    services = ("router", "ledger", "workflow", "agents", "api", "notifier")
    return [
        line
        for line in log
        if "Violation" in line
        and any(f'"{ACCOUNT}/user:{user}"' in line for user in services)
        and f'"{subjects.ledger("t1")}"' not in line  # the refusals asked for above
        and f'"{subjects.grade_alert("t1")}"' not in line
        and f'"{CONTROL}"' not in line
    ]


async def test_operator_commands_connect_with_the_configured_nats_user(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """`flipsync budget` (connect_cli) signs in as NATS_USER; without a user it is refused."""
    assert stack.nats_auth is not None
    anonymous = Settings(nats_url=stack.nats_url, redis_url=stack.redis_url)
    with pytest.raises(nats.errors.Error):
        await connect_cli(anonymous, max_reconnect_attempts=0, allow_reconnect=False)
    admin = anonymous.model_copy(
        update={
            "nats_user": "admin",
            "nats_password": SecretStr(stack.nats_auth.passwords["admin"]),
        }
    )
    nc = await connect_cli(admin)
    try:
        assert nc.is_connected
        assert nc.new_inbox().startswith(inbox_prefix("admin") + ".")
    finally:
        await nc.close()

    parser = argparse.ArgumentParser()
    add_budget_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["budget", "show"])
    assert await run_budget_command(args, admin) == 0
    assert "budget" in capsys.readouterr().out.lower()
