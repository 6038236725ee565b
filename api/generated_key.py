"""Handing over the API key `flipsync http` makes when none is configured, out of the logs.

On a terminal the key is printed. Anywhere else (a container, a service manager) stdout ends
up in logs, so the key goes to a file only its owner may read, and the path is printed.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import TextIO

KEY_FILE = "api-key"
"""Name of the file the key is written to, under the data directory (or a fresh temp dir)."""


def new_key() -> str:
    """A fresh random API key."""
    return "fs-" + secrets.token_urlsafe(24)


def key_file_name(tenant: str) -> str:
    """The key file of a tenant: api-key for the default tenant, api-key-TENANT otherwise."""
    return KEY_FILE if tenant == "default" else f"{KEY_FILE}-{tenant}"


def write_key_file(key: str, data_dir: Path | None, tenant: str = "default") -> Path:
    """Write key to data_dir/api-key (api-key-TENANT for another tenant; or a private temp
    dir), readable by its owner only."""
    folder = data_dir if data_dir is not None else Path(tempfile.mkdtemp(prefix="flipsync-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / key_file_name(tenant)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older file of the same name may have had wider rights
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return path


def announce_key(
    key: str, tenant: str, data_dir: Path | None, out: TextIO, *, dashboard: str = ""
) -> None:
    """Tell the operator the key: printed on a terminal (with dashboard, the page's URL
    holding it in its fragment, which a browser never sends), else written to a 0600 file."""
    if out.isatty():
        print(f"flipsync http: no FLIPSYNC_API_KEYS; key of tenant {tenant}: {key}", file=out)
        if dashboard:
            print(f"flipsync http: {tenant}'s dashboard: {dashboard}#key={key}", file=out)
    else:
        path = write_key_file(key, data_dir, tenant)
        print(f"flipsync http: no FLIPSYNC_API_KEYS; key of tenant {tenant} is in {path}", file=out)
    out.flush()
