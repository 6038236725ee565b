"""Peer gateways for bench/overhead, each in its own process in front of the same simulated
provider: LiteLLM's proxy (PyPI) and Portkey's gateway (npm). Only ones already installed run;
the benchmark never installs them. Each is found, started and asked like any OpenAI server."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from flipsync.children import ChildProcess


@dataclass(kw_only=True)
class Peer:
    """How to start one peer on a port and what its requests need."""

    name: str
    argv: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    model: str = "gpt-4o-mini"
    path: str = "/v1/chat/completions"

    def process(self, port: int) -> ChildProcess:
        """The peer as a child process, ready once its port accepts."""
        argv = [part.replace("{port}", str(port)) for part in self.argv]
        return ChildProcess(argv, ready_port=port)


def find_peers(sim_base_url: str, workdir: Path) -> tuple[list[Peer], dict[str, str]]:
    """The installed peers, and for each one that is not, the reason it is skipped."""
    peers: list[Peer] = []
    skipped: dict[str, str] = {}
    litellm = _litellm(sim_base_url, workdir)
    if isinstance(litellm, Peer):
        peers.append(litellm)
    else:
        skipped["litellm"] = litellm
    portkey = _portkey(sim_base_url)
    if isinstance(portkey, Peer):
        peers.append(portkey)
    else:
        skipped["portkey"] = portkey
    return peers, skipped


def _litellm(sim_base_url: str, workdir: Path) -> Peer | str:
    """LiteLLM's proxy, from this interpreter's packages or the PATH."""
    command = shutil.which("litellm")
    if command is None and importlib.util.find_spec("litellm") is None:
        return "not installed (pip install 'litellm[proxy]' outside the project to compare)"
    config = workdir / "litellm.json"  # the proxy reads YAML, and JSON is YAML
    model = {
        "model_name": "gpt-4o-mini",
        "litellm_params": {
            "model": "openai/gpt-4o-mini",
            "api_base": sim_base_url,
            "api_key": "none",
        },
    }
    config.write_text(json.dumps({"model_list": [model]}))
    launch = [command] if command else [sys.executable, "-m", "litellm"]
    return Peer(name="litellm", argv=[*launch, "--config", str(config), "--port", "{port}"])


def _portkey(sim_base_url: str) -> Peer | str:
    """Portkey's gateway, from a global or local node_modules."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    roots = [Path("node_modules")]
    npm = shutil.which("npm")
    if npm is not None:
        found = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, check=False)
        roots.append(Path(found.stdout.strip()))
    for root in roots:
        package = root / "@portkey-ai" / "gateway"
        manifest = package / "package.json"
        if manifest.exists():
            bin_field = json.loads(manifest.read_text()).get("bin", "build/start-server.js")
            entry = bin_field if isinstance(bin_field, str) else next(iter(bin_field.values()))
            return Peer(
                name="portkey",
                argv=[node, str(package / entry), "--port={port}"],
                headers={"x-portkey-provider": "openai", "x-portkey-custom-host": sim_base_url},
            )
    return "not installed (npm install -g @portkey-ai/gateway outside the project to compare)"


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    """A temporary directory for the peers' configuration files."""
    return tempfile.TemporaryDirectory(prefix="flipsync-peers-")
