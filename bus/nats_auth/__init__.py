"""NATS users and subject permissions of FlipSync, rendered as a nats-server config.

One account, FLIPSYNC, with JetStream. Each service has its own user (router, ledger,
workflow, agents, api, and admin for operators and the all-in-one process) and each agent spec
has one (``agent-<name>``) that may publish only its own requests and read only its own
results. Only the router (paid calls) and the workflow service (the call-free work of a
workflow that succeeded) may publish on ``ledger.>``.

Passwords never appear in the file: each user's entry reads a bcrypt hash from the server's
environment (``password: $FLIPSYNC_NATS_HASH_ROUTER``), so deploy/nats/auth.conf is committed
as is and the secrets live where the deployment keeps secrets (a Kubernetes Secret, an env file).

Every user gets its own inbox prefix (``_INBOX_<user>``): replies, JetStream acks and pushed
consumer messages arrive there, and an agent user may subscribe to no other inbox. Service
users may also read ``_INBOX.>``, where FastStream's pull subscribers fetch whatever the
connection's prefix; they are our own code, trusted with the JetStream API anyway.
"""

from bus.nats_auth.config import render_auth_conf, write_auth_files
from bus.nats_auth.options import (
    EmbeddedAuth,
    broker_options,
    client_options,
    embedded_auth,
    settings_broker_options,
)
from bus.nats_auth.passwords import (
    DEPLOY_ROUNDS,
    EMBEDDED_ROUNDS,
    hash_password,
    new_passwords,
    server_environment,
)
from bus.nats_auth.users import (
    ACCOUNT,
    ADMIN,
    AGENT_PREFIX,
    HASH_VARIABLE_PREFIX,
    NatsUser,
    Permissions,
    agent_user,
    agent_users,
    all_users,
    hash_variable,
    inbox_prefix,
    service_users,
    tenant_agent_user,
    tenant_agent_users,
)

__all__ = [
    "ACCOUNT",
    "ADMIN",
    "AGENT_PREFIX",
    "DEPLOY_ROUNDS",
    "EMBEDDED_ROUNDS",
    "HASH_VARIABLE_PREFIX",
    "EmbeddedAuth",
    "NatsUser",
    "Permissions",
    "agent_user",
    "agent_users",
    "all_users",
    "broker_options",
    "client_options",
    "embedded_auth",
    "hash_password",
    "hash_variable",
    "inbox_prefix",
    "new_passwords",
    "render_auth_conf",
    "server_environment",
    "service_users",
    "settings_broker_options",
    "tenant_agent_user",
    "tenant_agent_users",
    "write_auth_files",
]
