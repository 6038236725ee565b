"""`flipsync http` ends its start-up with lines to paste into a shell: the servers' URLs as
`export NATS_URL=...` (what other commands' errors tell you to export), the OpenAI-compatible
endpoint and a key as OPENAI_BASE_URL and OPENAI_API_KEY, the dashboard and each key's file.
A newcomer found the URLs only inline in one long line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from api.generated_key import KEY_FILE
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.embedded.process import free_port
from flipsync.serving import http_exports

START_GUARD_S = 90
"""A `flipsync http` that has not printed its exports by then has hung: the test fails."""


def test_the_exports_quote_paths_and_say_where_the_keys_are(tmp_path: Path) -> None:
    keys = {"default": tmp_path / "my data" / "api-key", "demo": tmp_path / "api-key-demo"}
    text = http_exports("nats://127.0.0.1:4222", "redis://127.0.0.1:6379/0",
                        "http://localhost:8080", keys)  # fmt: skip
    lines = text.splitlines()
    assert "export NATS_URL=nats://127.0.0.1:4222" in lines
    assert "export REDIS_URL=redis://127.0.0.1:6379/0" in lines
    assert "export OPENAI_BASE_URL=http://localhost:8080/v1" in lines
    assert f"export OPENAI_API_KEY=\"$(cat '{keys['default']}')\"  # tenant default" in lines
    assert "# dashboard: http://localhost:8080/dashboard (it asks for an API key)" in lines
    assert f"# API key of tenant demo: in {keys['demo']}" in lines
    configured = http_exports("nats://n:1", "redis://r:2/0", "http://h:3", {}).splitlines()
    assert "# OPENAI_API_KEY: one of the keys configured in FLIPSYNC_API_KEYS" in configured
    assert not [line for line in configured if line.startswith("export OPENAI_API_KEY")]


async def test_flipsync_http_prints_lines_a_shell_can_take(
    tmp_path: Path, nats_server: EmbeddedNats, redis_server: EmbeddedRedis
) -> None:
    port = free_port()
    data = tmp_path / "data"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    env = {**clean, "NATS_URL": nats_server.url, "REDIS_URL": redis_server.url,
           "FLIPSYNC_DATA_DIR": str(data)}  # fmt: skip
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flipsync", "http", "--port", str(port),
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert child.stdout is not None
    printed: list[str] = []
    try:
        async with asyncio.timeout(START_GUARD_S):
            while not printed or not printed[-1].startswith("# API key of tenant demo"):
                line = await child.stdout.readline()
                assert line, f"flipsync http ended: {printed}"
                printed.append(line.decode().rstrip("\n"))
        exports = [line for line in printed if line.startswith("export ")]
        shell = "\n".join([*exports, 'printf "%s\\n" "$NATS_URL" "$REDIS_URL" '
                           '"$OPENAI_BASE_URL" "$OPENAI_API_KEY"'])  # fmt: skip
        bash = await asyncio.create_subprocess_exec("bash", "-c", shell, stdout=subprocess.PIPE)
        said, _ = await bash.communicate()
        assert bash.returncode == 0
        nats_url, redis_url, base_url, key = said.decode().splitlines()
        assert (nats_url, redis_url) == (nats_server.url, redis_server.url)
        assert base_url == f"http://127.0.0.1:{port}/v1"
        assert key == (data / KEY_FILE).read_text().strip() and key.startswith("fs-")
        assert f"# dashboard: http://127.0.0.1:{port}/dashboard (it asks for an API key)" in (
            printed
        )
        assert f"# API key of tenant demo: in {data / f'{KEY_FILE}-demo'}" in printed
        bearer = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession() as http:  # the pasted values work
            async with http.get(f"{base_url}/models", headers=bearer) as models:
                assert models.status == 200, await models.text()
            async with http.get(f"http://127.0.0.1:{port}/dashboard") as page:
                assert page.status == 200
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
            async with asyncio.timeout(START_GUARD_S):
                await child.wait()
