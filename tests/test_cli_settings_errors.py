"""A bad setting in the environment ends a command with one line naming it, exit 2.

Found by a newcomer: a REDIS_URL with the wrong scheme ended in redis-py's traceback; a
NATS_URL with a bad port was reported as unreachable after the connect timeout; `flipsync
run router` without a provider ended in a 25-line traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bus.settings import Settings
from tests.test_cli_first_hour import flipsync


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("NATS_URL", "localhost:4222x", "NATS_URL: 'localhost:4222x': Port could not be cast"),
        ("NATS_URL", "http://nats:4222", "NATS_URL: 'http://nats:4222' is not one of nats://"),
        ("REDIS_URL", "http://127.0.0.1:1", "REDIS_URL: 'http://127.0.0.1:1' is not one of"),
        ("REDIS_URL", "redis://:6379", "REDIS_URL: 'redis://:6379' names no host"),
        ("FLIPSYNC_SIM_LATENCY_MS", "abc", "FLIPSYNC_SIM_LATENCY_MS: Input should be a valid"),
    ],
)
def test_a_bad_setting_is_named_in_one_line(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    done = flipsync("report", env={variable: value}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"flipsync: {said}"), line
    assert not (tmp_path / ".flipsync").exists()  # nothing was started


def test_a_router_without_a_provider_says_what_to_set(tmp_path: Path) -> None:
    done = flipsync("run", "router", env={"NATS_URL": "nats://127.0.0.1:1"}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("flipsync: no provider: set OPENAI_API_KEY or OPENAI_BASE_URL")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NATS_URL", "nats://a:4222,nats://b:4222"),
        ("NATS_URL", "localhost:4222"),
        ("NATS_URL", "tls://user:pw@nats.example:4443"),
        ("NATS_URL", "wss://nats.example"),
        ("REDIS_URL", "redis://:secret@redis:6379/0"),
        ("REDIS_URL", "rediss://redis.example"),
        ("REDIS_URL", "unix:///tmp/redis.sock"),
    ],
)
def test_the_url_forms_clients_accept_are_kept(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    settings = Settings()
    assert (settings.nats_url if variable == "NATS_URL" else settings.redis_url) == value


def test_an_empty_url_still_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "")
    monkeypatch.setenv("REDIS_URL", "")
    settings = Settings()
    assert settings.nats_url is None and settings.redis_url is None
    monkeypatch.setenv("REDIS_URL", "localhost:6379")  # redis-py wants a scheme
    with pytest.raises(ValidationError, match="is not one of redis://"):
        Settings()


@pytest.mark.parametrize("key", ["fs-" + "A" * 32, "my-configured-key"])
def test_flipsyncs_own_key_as_the_provider_key_is_refused(tmp_path: Path, key: str) -> None:
    """The OpenAI-client lines `flipsync http` prints, pasted into flipsync's own shell,
    would make flipsync call itself: the command says so instead of starting."""
    env = {
        "NATS_URL": "nats://127.0.0.1:1",
        "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1",
        "OPENAI_API_KEY": key,
        "FLIPSYNC_API_KEYS": '{"my-configured-key": "default"}',
    }
    done = flipsync("run", "router", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("flipsync: OPENAI_API_KEY holds a FlipSync API key"), line
    assert "http://127.0.0.1:8080/v1" in line and "unset OPENAI_API_KEY OPENAI_BASE_URL" in line


def test_a_providers_key_is_not_taken_for_flipsyncs(tmp_path: Path) -> None:
    from api.generated_key import is_generated_key, new_key
    from api.key_digest import digest
    from bus.settings import Settings
    from cost_ledger.catalog import PriceCatalog
    from flipsync.providers import ProviderConfigError, provider_configs

    assert is_generated_key(new_key())
    assert not is_generated_key("sk-proj-" + "A" * 40)
    assert not is_generated_key("fs-short")
    catalog = PriceCatalog.load()
    # Another FlipSync's /v1 elsewhere, with a key it generated, is a provider like any
    # (a review: the first version refused every "fs-" key wherever it pointed).
    elsewhere = Settings(openai_base_url="https://gw.example/v1", openai_api_key=new_key())
    assert provider_configs(elsewhere, catalog, None)[0].base_url == "https://gw.example/v1"
    # This deployment's own key is refused wherever it points, configured as its digest too.
    mine = "my-own-key"
    for keys in ({mine: "default"}, {digest(mine): "default"}):
        own = Settings(openai_base_url="https://gw.example/v1", openai_api_key=mine,
                       api_keys=keys)  # fmt: skip
        with pytest.raises(ProviderConfigError, match="holds a FlipSync API key"):
            provider_configs(own, catalog, None)


def _lan_address() -> str | None:
    """An address of one of this machine's own interfaces that is not loopback, if any."""
    import ipaddress
    import socket

    import psutil

    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback:
                return str(a.address)
    return None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.2", "localhost.", "[::ffff:127.0.0.1]", "[::1]", "0.0.0.0", "2130706433", "lan"],
)
def test_a_generated_key_is_refused_for_any_address_of_this_machine(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """Found by review: a generated "fs-" key was refused only when OPENAI_BASE_URL's host
    was loopback as written, so 127.0.0.2, "localhost.", [::ffff:127.0.0.1] and this
    machine's LAN address (what `flipsync http --host 192.168.x.y` prints in its exports)
    made flipsync call itself. A FLIPSYNC_PROVIDERS entry's key was not checked at all."""
    from api.generated_key import new_key
    from bus.settings_sections import ProviderSettings
    from cost_ledger.catalog import PriceCatalog
    from flipsync.providers import ProviderConfigError, provider_configs

    if host == "lan" and (host := _lan_address() or "") == "":
        pytest.skip("this machine has no address but loopback")
    catalog = PriceCatalog.load()
    url = f"http://{host}:8080/v1"
    key = new_key()
    pasted = Settings(openai_base_url=url, openai_api_key=key)
    with pytest.raises(ProviderConfigError, match="OPENAI_API_KEY holds a FlipSync API key"):
        provider_configs(pasted, catalog, None)
    monkeypatch.setenv("LOCAL_KEY", key)
    entry = ProviderSettings(name="local", base_url=url, api_key_env="LOCAL_KEY",
                             models=("gpt-4o-mini",))  # fmt: skip
    with pytest.raises(ProviderConfigError, match="provider 'local': LOCAL_KEY holds a FlipSync"):
        provider_configs(Settings(providers=[entry]), catalog, None)
    monkeypatch.setenv("LOCAL_KEY", "sk-proj-" + "A" * 40)  # a provider's own key: served
    assert provider_configs(Settings(providers=[entry]), catalog, None)[0].base_url == url


def test_a_generated_key_elsewhere_or_unresolved_is_a_provider_like_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another machine's address, or a name the resolver does not know (taken as another
    machine's, never waited on past the bound), keeps a generated key as a provider's."""
    from api.generated_key import new_key
    from api.key_digest import digest
    from bus.settings_sections import ProviderSettings
    from cost_ledger.catalog import PriceCatalog
    from flipsync.providers import ProviderConfigError, provider_configs

    catalog = PriceCatalog.load()
    for url in ("http://198.51.100.7:8080/v1", "http://flipsync-gw.invalid/v1"):
        settings = Settings(openai_base_url=url, openai_api_key=new_key())
        assert provider_configs(settings, catalog, None)[0].base_url == url
    mine = "my-own-key"  # this deployment's own key, in a providers entry, wherever it points
    monkeypatch.setenv("GW_KEY", mine)
    entry = ProviderSettings(name="gw", base_url="https://gw.example/v1", api_key_env="GW_KEY",
                             models=("gpt-4o-mini",))  # fmt: skip
    own = Settings(providers=[entry], api_keys={digest(mine): "default"})
    with pytest.raises(ProviderConfigError, match="provider 'gw': GW_KEY holds a FlipSync"):
        provider_configs(own, catalog, None)
