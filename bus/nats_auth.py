"""NATS users and subject permissions of FlipSync, rendered as a nats-server config.

One account, FLIPSYNC, with JetStream. Each service has its own user (router, ledger,
workflow, agents, api, and admin for operators and the all-in-one process) and each agent spec
has one (``agent-<name>``) that may publish only its own requests and read only its own
results. Only the router (and the agents service, which books call-free work) may publish on
``ledger.>``.

Passwords never appear in the file: each user's entry reads a bcrypt hash from the server's
environment (``password: $FLIPSYNC_NATS_HASH_ROUTER``), so deploy/nats/auth.conf is committed
as is and the secrets live where the deployment keeps secrets (a Kubernetes Secret, an env file).

Every user gets its own inbox prefix (``_INBOX_<user>``): replies, JetStream acks and pushed
consumer messages arrive there, and an agent user may subscribe to no other inbox. Service
users may also read ``_INBOX.>``, where FastStream's pull subscribers fetch whatever the
connection's prefix; they are our own code, trusted with the JetStream API anyway.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
from faststream.security import SASLPlaintext

from bus import subjects
from bus.settings import Settings

ACCOUNT = "FLIPSYNC"
ADMIN = "admin"
AGENT_PREFIX = "agent-"
HASH_VARIABLE_PREFIX = "FLIPSYNC_NATS_HASH_"
DEPLOY_ROUNDS = 11
"""bcrypt cost of deployed passwords (~0.1 s per check, paid once per connection)."""
EMBEDDED_ROUNDS = 4
"""bcrypt cost of the embedded server's throwaway passwords: fast to start."""

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
            ],
            [s.REQUESTS_ALL, s.LLM_FLIGHT_ALL, s.BUDGET_CONTROL, s.FLAGS_CONTROL],
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
            "the workflow DAG: uploads in, agent runs out",
            [s.AGENT_RUN_ALL, s.WORKFLOW_ALL, s.DLQ_ALL],
            [s.UPLOADS_ALL, s.AGENT_DONE_ALL, s.WORKFLOW_ALL],
        ),
        _service(
            "agents",
            "the agent runtime (all specs in one process) and seller chat; books call-free"
            " work in the ledger (agents/attribution.py)",
            [s.REQUESTS_ALL, s.AGENT_DONE_ALL, s.LEDGER_ALL, s.QUALITY_ALL, s.DLQ_ALL],
            [s.RESULTS_ALL, s.AGENT_RUN_ALL, s.CHAT_ASK_ALL],
            may_book_ledger=True,
            allow_responses=True,
        ),
        _service(
            "api",
            "the HTTP API: uploads, chat, budget and flag changes, OpenAI-compatible calls",
            [s.UPLOADS_ALL, s.CHAT_ASK_ALL, s.BUDGET_CONTROL, s.FLAGS_CONTROL, s.REQUESTS_ALL],
            [s.WORKFLOW_ALL, s.RESULTS_ALL],
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


def all_users(agents: Iterable[str]) -> list[NatsUser]:
    """Service users, then one user per agent."""
    return [*service_users(), *agent_users(agents)]


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def _render_user(user: NatsUser) -> list[str]:
    lines = [f"      # {user.comment}", "      {"]
    lines.append(f'        user: "{user.name}", password: ${hash_variable(user.name)}')
    perms = user.permissions
    if perms is not None:
        lines.append("        permissions: {")
        publish = f"allow: {_list(perms.publish)}"
        if perms.deny_publish:
            publish += f", deny: {_list(perms.deny_publish)}"
        lines.append(f"          publish: {{ {publish} }}")
        lines.append(f"          subscribe: {{ allow: {_list(perms.subscribe)} }}")
        if perms.allow_responses:
            lines.append("          allow_responses: true")
        lines.append("        }")
    lines.append("      }")
    return lines


def render_auth_conf(users: Iterable[NatsUser]) -> str:
    """The accounts block of nats-server's config (deploy/nats/auth.conf)."""
    lines = [
        "# Generated by `flipsync nats-auth` from bus/nats_auth.py and agents/specs: do not edit.",
        "# Each password is a bcrypt hash read from the server's environment, e.g.",
        f'# {hash_variable("router")} = "$2b$11$..." (the double quotes are part of the value,',
        "# so nats-server reads a string, not a $ variable). Values are literal: load server.env",
        "# with `kubectl create secret generic --from-env-file` or compose `format: raw`.",
        "# `flipsync nats-auth --secrets DIR` makes random passwords and both env files.",
        "accounts {",
        f"  {ACCOUNT} {{",
        "    jetstream: enabled",
        "    users: [",
    ]
    for user in users:
        lines.extend(_render_user(user))
    lines += ["    ]", "  }", "}", ""]
    return "\n".join(lines)


def hash_password(password: str, rounds: int = DEPLOY_ROUNDS) -> str:
    """The bcrypt hash nats-server checks a password against."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def new_passwords(users: Iterable[NatsUser]) -> dict[str, str]:
    """A fresh random password per user."""
    return {user.name: secrets.token_urlsafe(24) for user in users}


def server_environment(passwords: Mapping[str, str], rounds: int = DEPLOY_ROUNDS) -> dict[str, str]:
    """The variables nats-server needs: each user's hash, quoted so `$` is not a reference."""
    return {
        hash_variable(user): f'"{hash_password(password, rounds)}"'
        for user, password in passwords.items()
    }


def client_options(user: str, password: str | None) -> dict[str, Any]:
    """nats-py connect options of one user (nats.connect(**options))."""
    options: dict[str, Any] = {"user": user, "inbox_prefix": inbox_prefix(user)}
    if password is not None:
        options["password"] = password
    return options


def broker_options(user: str, password: str | None) -> dict[str, Any]:
    """FastStream NatsBroker options of one user (make_broker(url, **options))."""
    return {
        "security": SASLPlaintext(username=user, password=password or ""),
        "inbox_prefix": inbox_prefix(user),
    }


def settings_broker_options(settings: Settings) -> dict[str, Any]:
    """Broker options for settings' NATS_USER and NATS_PASSWORD; none without a user."""
    if settings.nats_user is None:
        return {}
    password = settings.nats_password.get_secret_value() if settings.nats_password else None
    return broker_options(settings.nats_user, password)


@dataclass(frozen=True)
class EmbeddedAuth:
    """What the embedded nats-server needs to enforce FlipSync's users, and their passwords."""

    config: str
    environment: dict[str, str]
    passwords: dict[str, str]

    def options(self, user: str) -> dict[str, Any]:
        """nats-py connect options of one user of this server."""
        return client_options(user, self.passwords[user])

    def broker_options(self, user: str) -> dict[str, Any]:
        """FastStream broker options of one user of this server."""
        return broker_options(user, self.passwords[user])


def embedded_auth(settings: Settings, agents: Iterable[str]) -> EmbeddedAuth:
    """Users for an embedded server: throwaway passwords, except settings' own user's if set."""
    users = all_users([*agents, *settings.extra_agents])
    passwords = new_passwords(users)
    if settings.nats_user is not None and settings.nats_password is not None:
        if settings.nats_user not in passwords:
            raise ValueError(f"NATS_USER {settings.nats_user!r} is not a FlipSync NATS user")
        passwords[settings.nats_user] = settings.nats_password.get_secret_value()
    return EmbeddedAuth(
        config=render_auth_conf(users),
        environment=server_environment(passwords, EMBEDDED_ROUNDS),
        passwords=passwords,
    )


def write_auth_files(out: Path, agents: Iterable[str], secrets_dir: Path | None = None) -> str:
    """Write the auth config to out; with secrets_dir, also fresh passwords as two env files
    of literal values: server.env (hashes, for nats-server) and clients.env
    (NATS_PASSWORD_<USER>, for services). Returns what was written, for the command to print."""
    users = all_users(agents)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_auth_conf(users))
    written = [f"{out}: {len(users)} users"]
    if secrets_dir is not None:
        passwords = new_passwords(users)
        secrets_dir.mkdir(parents=True, exist_ok=True)
        server = server_environment(passwords)
        _write_private(secrets_dir / "server.env", server)
        clients = {f"NATS_PASSWORD_{hash_variable(u)[len(HASH_VARIABLE_PREFIX):]}": p
                   for u, p in passwords.items()}  # fmt: skip
        _write_private(secrets_dir / "clients.env", clients)
        written.append(f"{secrets_dir}/server.env, {secrets_dir}/clients.env (keep them secret)")
    return "\n".join(written)


def _write_private(path: Path, variables: Mapping[str, str]) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
