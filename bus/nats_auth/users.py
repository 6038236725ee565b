"""FlipSync's NATS users: one per service and one per agent, each with its permissions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bus import subjects

ACCOUNT = "FLIPSYNC"
ADMIN = "admin"
AGENT_PREFIX = "agent-"
TENANT_SEPARATOR = "--"
"""Between agent and tenant in a per-tenant agent user's name (agent-<agent>--<tenant>)."""
HASH_VARIABLE_PREFIX = "FLIPSYNC_NATS_HASH_"

# What every service user needs for JetStream: the API (streams, consumers, direct gets),
# acks and flow control of its consumers, key-value buckets and object stores.
_JETSTREAM = ("$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>", "$O.>")


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish and subscribe to; everything else is refused."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()
    allow_responses: bool = False
    """May publish one reply to the reply subject of each request it received (chat)."""


@dataclass(frozen=True)
class NatsUser:
    """One NATS user; permissions None means every subject (admin)."""

    name: str
    permissions: Permissions | None
    comment: str


def inbox_prefix(user: str) -> str:
    """The inbox prefix a user's connection must use, the only inboxes it may subscribe to."""
    return f"_INBOX_{subjects.token(user)}"


def agent_user(agent: str) -> str:
    """Name of the NATS user of one agent."""
    return f"{AGENT_PREFIX}{subjects.token(agent)}"


def hash_variable(user: str) -> str:
    """Environment variable holding a user's bcrypt hash on the server."""
    return HASH_VARIABLE_PREFIX + user.upper().replace("-", "_")


def _service(
    name: str,
    comment: str,
    publish: Iterable[str],
    subscribe: Iterable[str],
    *,
    may_book_ledger: bool = False,
    allow_responses: bool = False,
) -> NatsUser:
    deny = () if may_book_ledger else (subjects.LEDGER_ALL,)
    return NatsUser(
        name=name,
        comment=comment,
        permissions=Permissions(
            publish=(*publish, *_JETSTREAM),
            # FastStream's pull subscribers fetch into "_INBOX." whatever the connection's
            # prefix, so service users (trusted code) also read there; agent users may not.
            subscribe=(*subscribe, f"{inbox_prefix(name)}.>", "_INBOX.>"),
            deny_publish=deny,
            allow_responses=allow_responses,
        ),
    )


def service_users() -> list[NatsUser]:
    """The users of FlipSync's services, with what each publishes and reads."""
    s = subjects
    return [
        NatsUser(ADMIN, None, "operators' CLI and the all-in-one (embedded) process"),
        _service(
            "router",
            "the LLM pipeline: reads requests, publishes results and the ledger events",
            [
                s.RESULTS_ALL,
                s.LEDGER_ALL,
                s.DLQ_ALL,
                s.LLM_FLIGHT_ALL,
                s.BUDGET_ALERTS_ALL,
                s.QUALITY_ALL,
                s.GRADE_ALERTS_ALL,  # router.routing.grade_alerts
                s.LLM_STREAM_ALL,
            ],
            # quality.>: every replica hears every verdict (router.routing.neighbour_share)
            [s.REQUESTS_ALL, s.LLM_FLIGHT_ALL, s.BUDGET_CONTROL, s.FLAGS_CONTROL, s.QUALITY_ALL],
            may_book_ledger=True,
        ),  # fmt: skip
        _service(
            "ledger",
            "the cost ledger: reads ledger events, may not write them",
            [s.DLQ_ALL, s.BUDGET_ALERTS_ALL],
            [s.LEDGER_ALL, s.BUDGET_CONTROL, s.BUDGET_ALERTS_ALL],
        ),
        _service(
            "workflow",
            "the workflow DAG: uploads in, agent runs out; books the call-free work of a"
            " workflow that succeeded in the ledger (agents/attribution.py)",
            [s.AGENT_RUN_ALL, s.WORKFLOW_ALL, s.LEDGER_ALL, s.DLQ_ALL],
            [s.UPLOADS_ALL, s.AGENT_DONE_ALL, s.WORKFLOW_ALL],
            may_book_ledger=True,
        ),
        _service(
            "agents",
            "the agent runtime (all specs in one process) and seller chat",
            [s.REQUESTS_ALL, s.AGENT_DONE_ALL, s.QUALITY_ALL, s.DLQ_ALL],
            [s.RESULTS_ALL, s.AGENT_RUN_ALL, s.CHAT_ASK_ALL],
            allow_responses=True,
        ),
        _service(
            "notifier",
            "alert delivery: reads budget and grade alerts, sends them to webhooks and email",
            [s.DLQ_ALL],
            [s.BUDGET_ALERTS_ALL, s.GRADE_ALERTS_ALL],
        ),
        _service(
            "api",
            "the HTTP API: uploads, chat, budget and flag changes, OpenAI-compatible calls",
            [s.UPLOADS_ALL, s.CHAT_ASK_ALL, s.BUDGET_CONTROL, s.FLAGS_CONTROL, s.REQUESTS_ALL],
            [s.WORKFLOW_ALL, s.RESULTS_ALL, s.LLM_STREAM_ALL],
        ),
    ]


def agent_users(agents: Iterable[str]) -> list[NatsUser]:
    """One user per agent: its own request subjects out, its own results in, nothing else."""
    users = []
    for agent in sorted(set(agents)):
        name = agent_user(agent)
        results = f"llm.result.*.{agent}.>"
        users.append(
            NatsUser(
                name=name,
                comment=f"agent {agent}: its LLM requests and results only",
                permissions=Permissions(
                    publish=(
                        f"llm.request.*.{agent}",
                        # LlmClient looks up a stored result by subject (direct get).
                        f"$JS.API.DIRECT.GET.{subjects.STREAM_RESULTS}.{results}",
                    ),
                    subscribe=(results, f"{inbox_prefix(name)}.>"),
                    deny_publish=(subjects.LEDGER_ALL,),
                ),
            )
        )
    return users


def tenant_agent_user(agent: str, tenant: str) -> str:
    """Name of the NATS user of one agent working for one tenant."""
    return f"{AGENT_PREFIX}{subjects.token(agent)}{TENANT_SEPARATOR}{subjects.token(tenant)}"


def tenant_agent_users(agents: Iterable[str], tenants: Iterable[str]) -> list[NatsUser]:
    """One user per agent and tenant: that tenant's request subject of that agent out, its
    results in, nothing else; a leaked credential reads and writes one tenant's subjects."""
    users = []
    for tenant in sorted(set(tenants)):
        for agent in sorted(set(agents)):
            name = tenant_agent_user(agent, tenant)
            results = f"llm.result.{subjects.token(tenant)}.{agent}.>"
            users.append(
                NatsUser(
                    name=name,
                    comment=f"agent {agent} for tenant {tenant}: its LLM requests and results",
                    permissions=Permissions(
                        publish=(
                            subjects.llm_request(tenant, agent),
                            f"$JS.API.DIRECT.GET.{subjects.STREAM_RESULTS}.{results}",
                        ),
                        subscribe=(results, f"{inbox_prefix(name)}.>"),
                        deny_publish=(subjects.LEDGER_ALL,),
                    ),
                )
            )
    return users


def all_users(agents: Iterable[str], tenants: Iterable[str] = ()) -> list[NatsUser]:
    """Service users, then one user per agent; with tenants, one per agent and tenant instead."""
    tenants = tuple(tenants)
    per_agent = tenant_agent_users(agents, tenants) if tenants else agent_users(agents)
    return [*service_users(), *per_agent]
