"""Handing over the API key `flipsync http` makes when none is configured, out of the logs.

The key goes to a file only its owner may read, and the path is printed. On a terminal the
key is printed too; anywhere else (a container, a service manager) stdout ends up in logs, so
only the path is.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import TextIO

KEY_FILE = "api-key"
"""Name of the file the key is written to, under the data directory (or a fresh temp dir)."""


_GENERATED = re.compile(r"fs-[A-Za-z0-9_-]{32}")


def new_key() -> str:
    """A fresh random API key."""
    return "fs-" + secrets.token_urlsafe(24)


def is_generated_key(value: str) -> bool:
    """Whether value has the shape of a key new_key() makes."""
    return _GENERATED.fullmatch(value) is not None


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
) -> Path:
    """Write the key to its 0600 file and return the file's path; tell the operator where it
    is, and on a terminal the key itself (with dashboard, the page's URL holding it in its
    fragment, which a browser never sends). The file is written on a terminal too, so that
    the key file `flipsync http` names is always there."""
    path = write_key_file(key, data_dir, tenant)
    if out.isatty():
        print(f"flipsync http: no FLIPSYNC_API_KEYS; key of tenant {tenant}: {key} "
              f"(kept in {path})", file=out)  # fmt: skip
        if dashboard:
            print(f"flipsync http: {tenant}'s dashboard: {dashboard}#key={key}", file=out)
    else:
        print(f"flipsync http: no FLIPSYNC_API_KEYS; key of tenant {tenant} is in {path}", file=out)
    out.flush()
    return path
