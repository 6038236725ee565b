"""The local data directory of the embedded servers: what one command leaves (the demo's
products, spend and savings) the next one sees, until `flipsync reset` clears it.

Only one command at a time may run embedded servers on it (a lock file says which).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from api.generated_key import KEY_FILE
from bus.settings import Settings
from bus.terminal import terminal_safe

DEFAULT = Path(".flipsync")
"""The data directory of commands run without NATS_URL and REDIS_URL (FLIPSYNC_DATA_DIR
chooses another)."""
_LOCK = "lock"


class DataDirBusy(RuntimeError):
    """Another flipsync command runs embedded servers on the same data directory."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(
            f"another flipsync command ({holder}) is using {path}: wait for it or stop it, "
            "or point this one at its servers with NATS_URL and REDIS_URL"
        )


def local(settings: Settings) -> Settings:
    """settings with the default data directory when embedded servers will run and none is
    chosen; unchanged otherwise."""
    embedded = settings.nats_url is None or settings.redis_url is None
    if settings.data_dir is not None or not embedded:
        return settings
    return settings.model_copy(update={"data_dir": DEFAULT.resolve()})


@contextlib.contextmanager
def held(path: Path | None) -> Iterator[None]:
    """Hold the data directory for this process (nothing to hold without one)."""
    if path is None:
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    lock = path / _LOCK
    with lock.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise DataDirBusy(path, f"pid {handle.read().strip() or '?'}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def busy(path: Path | None) -> DataDirBusy | None:
    """Why path cannot be held now (another command holds it), or None; checked without
    creating or holding it, so that a command can say so before its slow imports (a second
    `flipsync demo` took 6.8 s to be refused)."""
    if path is None or not (path / _LOCK).is_file():
        return None
    with (path / _LOCK).open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return DataDirBusy(path, f"pid {handle.read().strip() or '?'}")
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


class NotOnlyData(RuntimeError):
    """The folder reset was pointed at holds more than flipsync's own data."""


_WRITTEN = {
    "nats": frozenset({"nats.conf", "nats-server.log", "jetstream"}),
    "redis": frozenset({"redis-server.log", "appendonly.aof", "appendonlydir", "dump.rdb"}),
}
"""What the embedded servers write in their folders of a data directory (redis also temp-*
files while it rewrites); a command also keeps its lock and the generated API keys
(KEY_FILE*) there."""


def _not_ours(path: Path) -> list[str]:
    """The entries of the data directory at path that flipsync did not put there: another
    name, a name of ours of another kind (a link, a folder for a file), or a server's folder
    holding what that server does not write (FLIPSYNC_DATA_DIR naming a folder of projects
    with a redis/ checkout in it would have taken the checkout)."""
    foreign = []
    for entry in sorted(path.iterdir()):
        name = entry.name
        if name in _WRITTEN and entry.is_dir() and not entry.is_symlink():
            foreign += [f"{name}/{inner}" for inner in _unwritten(entry, _WRITTEN[name])]
        else:  # the lock and the key files: files, not links
            ours = name == _LOCK or name.startswith(KEY_FILE)
            if not ours or entry.is_symlink() or not entry.is_file():
                foreign.append(name)
    return foreign


def _unwritten(folder: Path, written: frozenset[str]) -> list[str]:
    """The names in a server's folder that the server does not write (redis's temp-* files
    from a rewrite are its own)."""
    names = sorted(inner.name for inner in folder.iterdir())
    return [n for n in names if n not in written and not n.startswith("temp-")]


def reset(path: Path) -> str:
    """Remove the data directory (refused while a command holds it, and when it holds
    anything flipsync did not put there, or is not a folder); what was done, and what it
    leaves."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        kind = "a symbolic link" if path.is_symlink() else "not a folder"
        raise NotOnlyData(f"{path} is {kind}: not cleared; is FLIPSYNC_DATA_DIR right?")
    if not path.exists():
        return f"nothing to clear: {path} does not exist"
    path = Path(os.path.abspath(path))  # "." or "..": rmtree needs the folder's own name
    if not any(path.iterdir()):  # not one flipsync made: a command leaves its lock at least
        return f"nothing to clear: {path} is empty"
    if foreign := _not_ours(path):  # FLIPSYNC_DATA_DIR=. would have taken the folder's files
        shown = ", ".join(terminal_safe(n, line_breaks=False) for n in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise NotOnlyData(
            f"{path} holds more than flipsync's data ({shown}{more}): not cleared; is "
            "FLIPSYNC_DATA_DIR right?"
        )
    with held(path):
        shutil.rmtree(path)
    return (
        f"cleared {path} (the embedded servers' streams, ledger, caches, budgets and the API "
        "keys `flipsync http` made); the packages written in listings/ are kept, and seller "
        "chat no longer knows them"
    )


def reset_refused(busy: DataDirBusy) -> str:
    """Why reset cannot clear a data directory another command holds, and what to do (not
    DataDirBusy's "point this one at its servers", which fits any command but reset)."""
    return f"another flipsync command ({busy.holder}) is using {busy.path}: stop it, then reset"


def has_data(path: Path | None) -> bool:
    """Whether a command left data there."""
    return path is not None and (path / "redis").is_dir()


@contextlib.asynccontextmanager
async def local_ledger(settings: Settings) -> AsyncIterator[Settings]:
    """settings with REDIS_URL pointing at the Redis an earlier command left in the data
    directory (started for the block and stopped after it), when no REDIS_URL is set and
    there is one; settings unchanged otherwise (the command then says what it needs)."""
    if settings.redis_url is not None or not has_data(settings.data_dir):
        yield settings
        return
    from bus.embedded import EmbeddedRedis

    assert settings.data_dir is not None
    server = EmbeddedRedis(settings.data_dir / "redis", persist=True)
    await server.start()
    try:
        yield settings.model_copy(update={"redis_url": server.url})
    finally:
        await server.stop()
