"""How `flipsync upload` ends when it stops early (its --timeout, Ctrl-C, NATS lost, a
failure midway): the exit statuses, the closing line, and the cancel of what it started."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.cli_session import Session
    from bus.connection_lost import NatsLost
    from bus.settings import Settings

EXIT_FAILED = 1
"""Exit status of an upload that failed midway (named), or whose products' workflows failed."""
EXIT_UNREACHABLE = 3
"""Exit status when NATS or Redis cannot be reached, or stopped answering (as
flipsync.exit_status's: agents/ does not import flipsync/)."""
EXIT_TIMEOUT = 4
"""Exit status of an upload whose --timeout passed before every product was done."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), what finished written."""


def nats_where(nats_url: str | None) -> str:
    """The NATS a command talks to, for a line: NATS_URL without its password, or the
    embedded server (None)."""
    from bus.reachable import redact_url

    return redact_url(nats_url) if nats_url else "the embedded server"


LOST_HINT = "is nats-server still running there, and is NATS_URL right?"
"""What the lost-NATS line asks the seller to check (as flipsync --help promises for exit 3)."""


def lost_line(exc: NatsLost, *, waiting: bool) -> str:
    """The line of an upload whose NATS connection dropped and did not come back, while it
    waited for listings (else while it uploaded)."""
    doing = "waiting for listings" if waiting else "uploading"
    return (
        f"flipsync upload: lost the connection to NATS at {exc.url} while {doing}; "
        f"not back within {exc.after_s:g} s"
    )


def upload_failure(exc: Exception, nats_url: str | None) -> tuple[str, int]:
    """The line and exit status of an upload that failed midway (not a photo, a timeout or
    Ctrl-C): EXIT_UNREACHABLE when NATS stopped answering, EXIT_FAILED for anything else."""
    from agents.intake import LOST_NATS, UploadError
    from bus.terminal import terminal_safe

    said = str(exc) if isinstance(exc, UploadError) else f"{type(exc).__name__}: {exc}"
    line = f"flipsync upload: {terminal_safe(said, line_breaks=False)}"
    lost = exc.lost_nats if isinstance(exc, UploadError) else isinstance(exc, LOST_NATS)
    if lost:
        return f"{line}: NATS at {nats_where(nats_url)} stopped answering", EXIT_UNREACHABLE
    return line, EXIT_FAILED


async def stop_unfinished(
    session: Session,
    settings: Settings,
    tenant: str,
    unfinished: list[str],
    since_seq: int,
    *,
    why: str,
    note: bool = True,
    reachable: bool = True,
) -> str:
    """Say at once that the upload stops (unless why is a line of its own, "flipsync upload:
    ..."), then cancel its unfinished workflows (so that no later command pays for them); the
    closing line's note on them (none when note is False and they were cancelled). Nothing
    is cancelled when NATS is known gone (reachable False)."""
    from agents.cancel import CANCEL_WITHIN_S, cancel_workflows
    from cost_ledger.report import counted

    if not unfinished:
        return ""
    what = counted(len(unfinished), "unfinished product")
    # A damaged photo or a failed upload ends it at once, with its own line.
    quiet = why.startswith("flipsync upload:")
    if why == "interrupted":
        print(f"stopping: cancelling {what} (Ctrl-C again to quit at once)", file=sys.stderr,
              flush=True)  # fmt: skip
    elif not quiet:
        print(f"stopping: {why}; cancelling {what}", file=sys.stderr, flush=True)
    if session.stopping is not None:
        session.stopping.set()  # the agents give way now: no request is sent after this
    if not reachable:
        return f"; {what} not cancelled (NATS is gone): they may resume under the next command"
    try:
        async with asyncio.timeout(CANCEL_WITHIN_S):
            await cancel_workflows(session.broker, settings, tenant, unfinished,
                                   since_seq=since_seq)  # fmt: skip
    except Exception as exc:  # said, not raised: the stop goes on either way
        detail = str(exc) or type(exc).__name__
        return f"; {what} not cancelled ({detail}): they may resume under the next command"
    return f"; {what} cancelled (calls already made stay in the report)" if note else ""
