"""compose.yaml as local processes: each FlipSync service's command and environment, read from
the file, with the compose hostnames and ports replaced by the test's own servers."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "compose.yaml"
IMAGE = "flipsync:latest"
"""The image every FlipSync service runs (deploy/Dockerfile)."""
IMAGE_ENTRYPOINT = ["flipsync"]
"""The image's ENTRYPOINT, for services that do not set their own."""
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_ADDRESS = re.compile(r"(?P<host>[A-Za-z][A-Za-z0-9_-]*):(?P<port>\d+)")


@dataclass(frozen=True, kw_only=True)
class ComposeService:
    """One service of the compose file that runs the FlipSync image."""

    name: str
    argv: list[str]
    """Entrypoint plus command, as the container would run them."""
    environment: dict[str, str]
    """Its environment, variables interpolated, hostnames still compose's."""
    replicas: int


def load_services(
    path: Path = COMPOSE_FILE, variables: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[ComposeService]]:
    """The whole compose document, and its FlipSync services in file order.

    variables stands for the shell environment compose interpolates ${VAR:-default} from;
    None means an empty one (so OPENAI_API_KEY is unset and the simulated provider answers).
    """
    document: dict[str, Any] = yaml.safe_load(path.read_text())  # resolves anchors and <<
    shell = dict(variables or {})
    services: list[ComposeService] = []
    for name, spec in document["services"].items():
        if spec.get("image") != IMAGE:
            continue
        environment = {
            str(k): interpolate(str(v), shell) for k, v in (spec.get("environment") or {}).items()
        }
        argv = [str(a) for a in spec.get("entrypoint") or IMAGE_ENTRYPOINT]
        argv += [str(a) for a in spec.get("command") or []]
        replicas = int((spec.get("deploy") or {}).get("replicas", 1))
        services.append(
            ComposeService(name=name, argv=argv, environment=environment, replicas=replicas)
        )
    return document, services


def interpolate(value: str, shell: Mapping[str, str]) -> str:
    """compose's ${VAR} and ${VAR:-default}, from shell."""

    def one(match: re.Match[str]) -> str:
        got = shell.get(match["name"])
        return got if got else (match["default"] or "")

    return _VARIABLE.sub(one, value)


def published_ports(document: Mapping[str, Any], service: str) -> set[int]:
    """The container ports a service publishes ("4222:4222" gives 4222)."""
    ports = document["services"][service].get("ports") or []
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in ports}


def rewrite_addresses(value: str, address_of: Callable[[str, int], str | None]) -> str:
    """value with every host:port that address_of knows replaced by its local address."""

    def one(match: re.Match[str]) -> str:
        local = address_of(match["host"], int(match["port"]))
        return local if local is not None else match[0]

    return _ADDRESS.sub(one, value)


def local_value(value: str, published: set[int], local_port: Callable[[int], int]) -> str:
    """An environment value run here: 0.0.0.0 as loopback, a port the service publishes as
    its local port (a test must not take a fixed port another may be using)."""
    if value == "0.0.0.0":
        return "127.0.0.1"
    if value.isdigit() and int(value) in published:
        return str(local_port(int(value)))
    return value


def local_argv(argv: list[str], local_port: Callable[[int], int]) -> list[str]:
    """argv run here: the image's programs as this interpreter's modules, a container's
    --host 0.0.0.0 as loopback, each --port as local_port gives it."""
    out: list[str] = []
    if argv[0] == "flipsync":
        out += [sys.executable, "-m", "flipsync"]
    elif argv[0] == "python":
        out += [sys.executable]
    else:
        raise ValueError(f"no local equivalent of the image's {argv[0]!r}")
    rest = argv[1:]
    for i, arg in enumerate(rest):
        if i and rest[i - 1] == "--host" and arg == "0.0.0.0":
            arg = "127.0.0.1"
        elif i and rest[i - 1] == "--port":
            arg = str(local_port(int(arg)))
        out.append(arg)
    return out
