"""Every Redis key of the optimizer, as constants and small builders."""

from __future__ import annotations

from bus.subjects import token
from router import keys as router_keys

PREFIX = "fs:optimizer:"
FLAGS = router_keys.FLAGS
"""Hash: flag rule name -> the encoded FlagRule (the router's live flags read it)."""
FLAGS_REV = router_keys.FLAGS_REV
"""Counter bumped by every flag change, so replicas know when to reload."""
EXPERIMENTS = f"{PREFIX}experiments"
"""Hash: experiment name -> the encoded Experiment."""
MODELS = f"{PREFIX}models"
"""Hash: fine-tuned model name -> its encoded registration (base model, prices)."""
REQUEST_TTL_S = 2 * 24 * 3600
"""How long a request's arm is remembered, waiting for its quality signal."""


# The arm scripts touch an event's seen marker, its request and its arm's sums together:
# they share the hash tag {arms}, one Redis Cluster slot (a low-rate stream of experiments).


def arm_stats(experiment: str, arm: str) -> str:
    """Hash of one arm's sums: n, cost, cost squared, latency, valid answers..."""
    return f"{PREFIX}{{arms}}:arm:{token(experiment)}:{token(arm)}"


def event_seen(event_id: str) -> str:
    """Marker that a ledger event was counted in its arm, so a replay counts it once."""
    return f"{PREFIX}{{arms}}:seen:{event_id}"


def request_arm(request_id: str) -> str:
    """Hash of what is known of one request: its arm, its ledger event, its quality signal."""
    return f"{PREFIX}{{arms}}:req:{request_id}"


def raw(value: bytes | str) -> bytes:
    """A Redis reply as bytes, whatever the client's decode_responses."""
    return value if isinstance(value, bytes) else value.encode()
