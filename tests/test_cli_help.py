"""A quick, self-explaining command line: `--help` of every command answers (its parser
imports nothing heavy), every option says what it does, and every report has `--json`. The
commands run as child processes, as a person runs them. How long --help takes is measured by
bench/cli_help (a benchmark, not a timed test: a busy machine must not fail the suite)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from flipsync.cli import COMMAND_HELP, full_parser
from flipsync.cli_parsing import pop_verbosity

HEAVY = (
    "numpy", "onnxruntime", "statsmodels", "scipy", "redis", "nats", "faststream", "openai",
    "rich", "fastapi", "uvicorn", "opentelemetry", "tokenizers", "PIL", "usearch", "uvloop",
    "httpx",
)  # fmt: skip
"""What a parser must not import: each of these costs tens to hundreds of milliseconds."""
REPORTS = (
    ("report",),
    ("providers",),
    ("cost", "spend"),
    ("cost", "timeseries"),
    ("cost", "forecast"),
    ("cost", "anomalies"),
    ("cost", "recommend"),
    ("cost", "vs-reference"),
    ("budget", "show"),
    ("experiment", "report"),
)
"""Every command that prints a report: each takes --json."""


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def every_parser() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command and subcommand's parser, by its words (("budget", "set"), ...)."""
    return {path: parser for path, parser in _walk(full_parser()) if path}


def _env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "REDIS_"))}
    return {**clean, "PYTHONDONTWRITEBYTECODE": "1"}


def _help(*words: str) -> subprocess.CompletedProcess[str]:
    """`flipsync WORDS --help`, run as a person runs it."""
    return subprocess.run(
        [sys.executable, "-m", "flipsync", *words, "--help"],
        env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_every_command_is_listed_and_parsed() -> None:
    parsers = every_parser()
    assert {path[0] for path in parsers} == set(COMMAND_HELP)
    assert ("budget", "set") in parsers and ("experiment", "report") in parsers


@pytest.mark.parametrize("command", ["", *COMMAND_HELP])
def test_help_answers(command: str) -> None:
    words = (command,) if command else ()
    done = _help(*words)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: flipsync") and done.stderr == ""


def test_subcommand_help_answers() -> None:
    # A subcommand's parser is built with its command's (the same imports), so one of each
    # group shows the path works; the import test below covers them all.
    for words in (("budget", "set"), ("cost", "forecast"), ("experiment", "start")):
        done = _help(*words)
        assert done.returncode == 0 and f"usage: flipsync {' '.join(words)}" in done.stdout


def test_building_every_parser_imports_nothing_heavy() -> None:
    """Deterministic where timing is not: in a fresh interpreter, build every command's
    parser (as `--help` does) and list which heavy modules got imported."""
    script = (
        "import json, sys\n"
        "from flipsync.cli import full_parser\n"
        "full_parser()\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=_env(), capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout) == []


def test_every_option_has_a_help_line() -> None:
    missing = [
        f"flipsync {' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
        for path, parser in every_parser().items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
        and action.help != argparse.SUPPRESS
        and not (action.help or "").strip()
    ]
    assert missing == []


def test_every_command_help_says_what_it_does_and_what_it_reads() -> None:
    """`flipsync demo --help` was a bare usage line; `budget --help` did not say it needs a
    deployment, nor `cost --help` that it reads the local ledger of `make demo`."""
    commands = {path[0]: parser for path, parser in every_parser().items() if len(path) == 1}
    bare = [name for name, parser in commands.items() if not (parser.description or "").strip()]
    assert bare == []
    for name in ("report", "cost", "providers"):
        text = commands[name].description or ""
        assert "REDIS_URL" in text and "make demo" in text, name
    for name in ("budget", "ledger", "flags", "experiment", "finetune"):
        assert "NATS_URL and REDIS_URL" in (commands[name].description or ""), name
    done = _help("demo")
    assert "Run everything embedded on the sample catalog." in done.stdout


def test_every_report_has_json() -> None:
    parsers = every_parser()
    without = [
        " ".join(words)
        for words in REPORTS
        if "--json" not in {s for a in parsers[words]._actions for s in a.option_strings}
    ]
    assert without == []


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flipsync", "--version"], env=_env(), capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("flipsync ")


def test_upload_help_documents_every_product_file_format_and_column() -> None:
    from agents.formats import FIELDS_HELP, FORMATS

    done = _help("upload")
    for fmt in FORMATS:
        assert f"\n  {fmt.name} " in done.stdout and fmt.title in done.stdout, fmt.name
    for column in FIELDS_HELP:
        assert f"  {column}" in done.stdout, column


def test_upload_help_and_readme_name_every_file_a_product_folder_may_hold() -> None:
    """Found by a newcomer: both said "a folder of photos" and named no file. Each file
    agents/sources.py reads from a folder is named, with what it is for, in both places."""
    from pathlib import Path

    from agents.folders import FIELDS_FILE, NOTES_FILE, PHOTO_SUFFIXES

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for text in (_help("upload").stdout, readme):
        for name in (NOTES_FILE, FIELDS_FILE, *(f"*{suffix}" for suffix in PHOTO_SUFFIXES)):
            assert name in text, name
        assert "cost_price" in text and "warning" in text


def test_verbose_is_taken_after_the_command_name_too() -> None:
    assert pop_verbosity(["-v", "--tenant", "t1", "-vv"]) == (["--tenant", "t1"], 3)
    assert pop_verbosity(["--verbose", "spend"]) == (["spend"], 1)
    assert pop_verbosity(["--", "-v"]) == (["--", "-v"], 0)  # after --, a value, kept
    done = _help("report", "-v")  # as people type it: an error before
    assert done.returncode == 0 and "usage: flipsync report" in done.stdout, done.stderr


def test_a_bad_option_is_one_line_naming_the_subcommand() -> None:
    for words, said in (
        (("report", "--colour"), "flipsync report: unrecognized arguments: --colour"),
        (("budget", "show", "--bogus"), "flipsync budget show: unrecognized arguments: --bogus"),
        (("upload", "x", "--timeout", "abc"), "flipsync upload: argument --timeout: invalid"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "flipsync", *words], env=_env(), capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2 and done.stdout == "", done
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(said), done.stderr
        assert (
            f"`flipsync {' '.join(words[: 2 if words[0] == 'budget' else 1])} --help`" in lines[0]
        )
