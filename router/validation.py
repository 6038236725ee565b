"""A request's JSON schema is data: checked before any call, and answers checked against it.

A caller's schema never makes the router reach out or hang: it must be a valid schema of a
known dialect (check_schema), bounded in size and depth, and its references local ('#...').
Validators resolve references through an empty referencing.Registry, which retrieves
nothing, so a reference the schema does not hold is an error, never a fetch. Its patterns
run in linear time (router.schema_patterns: RE2), as Python's engine holds the GIL through
an exponential match and no time limit can stop it. Every check runs off the event loop,
bounded in time, except a short answer against a schema checked before whose keywords all
take time linear in the answer (linear_schema): the hop to a thread costs more than such a
check, and its work is bounded by the step budget (router.schema_budget) like every other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import threading
from dataclasses import dataclass
from typing import Any, cast

import jsonschema
import msgspec
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

from bus.errors import WireError
from bus.limits import count_nodes, nesting_depth
from bus.messages import ErrorCode, LlmRequest
from router.schema_budget import (
    MAX_PROBE_STEPS,
    WORK_MULTIPLIERS,
    CheckTooLongError,
    answer_steps,
    bounded,
    step_budget,
)
from router.schema_patterns import linear, pattern_problem
from router.schema_walk import schema_objects

MAX_SCHEMA_BYTES = 64 * 1024
"""Largest output schema a request may carry, as compact JSON."""
MAX_SCHEMA_DEPTH = 32
"""Deepest nesting of an output schema's JSON."""
MAX_SCHEMA_NODES = 10_000
"""Most values (objects, arrays, scalars) an output schema may hold."""
CHECK_TIMEOUT_S = 2.0
"""Longest a schema check or an answer's validation may take, in a worker thread."""
REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
PROBES: tuple[Any, ...] = (None, True, 0, 1.5, "", "a", [], [None], {}, {"a": None})
"""Instances a new schema is tried on, so that a reference cycle that consumes nothing of
the instance ({"$ref": "#"}) is refused before the call, not found after it."""
MAX_MESSAGE_CHARS = 500
"""Longest error message an answer's refusal quotes: jsonschema writes the instance into it
(an answer of astral characters repr'd at ten characters each made a reason ten times the
answer, published beside the answer itself)."""
KNOWN_SCHEMAS = 512
"""Request schemas whose verdict a process keeps (as _checked keeps their validators)."""
_VERDICTS: dict[bytes, str] = {}
"""Verdicts of schemas checked before, by their JSON as sent, oldest first ("" for usable)."""
_CHECKING: dict[bytes, _Check] = {}
"""Checks queued or under way, by the schema's JSON as sent."""
_KEEPING = threading.RLock()
"""Held while _VERDICTS or _CHECKING changes: checks end on their own threads."""
SCHEMA_CHECK_THREADS = 2
"""Threads checking new request schemas. Their own, so that slow schemas (up to about half a
second each at MAX_SCHEMA_BYTES) queue behind each other, not in front of the embeddings
and long-text counts on the default pool."""
_CHECKS = concurrent.futures.ThreadPoolExecutor(
    SCHEMA_CHECK_THREADS, thread_name_prefix="schema-check"
)
_NO_RETRIEVAL: Registry[Any] = Registry()
"""A registry that holds nothing and retrieves nothing: only '#...' references resolve."""
INLINE_ANSWER_CHARS = 4_096
"""Longest answer checked on the event loop, and then only against a schema checked before
that linear_schema admits: a worker thread's hop cost about 300 us of CPU per answer
(measured in the router's dispatch), more than such a check."""
ON_LOOP_STEPS = 4_000
"""Most steps an answer's check may take on the event loop (about 10 ms here); past them it
goes on in a worker thread (a 4 KiB answer's whole budget, 36,384 steps, took 112 ms on
the loop for a required list of 60 names against 1,365 empty objects)."""
LINEAR_SCHEMA_OBJECTS = 256
"""Most objects a schema may hold and still be checked on the event loop."""
LINEAR_ENUM_VALUES = 64
"""Longest enum a schema checked on the event loop may hold."""
SUPERLINEAR_KEYWORDS = frozenset(
    {
        "$ref", "$dynamicRef", "$recursiveRef", "anyOf", "oneOf", "allOf", "not", "if",
        "then", "else", "dependentSchemas", "dependencies", "contains", "uniqueItems",
        "patternProperties", "unevaluatedProperties", "unevaluatedItems",
    }
)  # fmt: skip
"""Keywords under which one part of an answer may be checked many times over (branches,
references, every pair of items): a schema using any of them is checked in a worker thread.
Without them each part of an answer meets at most one subschema per keyword."""


def schema_problem(schema: object) -> str:
    """Why schema cannot be a request's output schema, or "" when it can."""
    if not isinstance(schema, dict):
        return "the output schema must be a JSON object"
    if nesting_depth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        return f"the output schema is nested deeper than {MAX_SCHEMA_DEPTH} levels"
    if count_nodes(schema, MAX_SCHEMA_NODES) > MAX_SCHEMA_NODES:
        return f"the output schema holds more than {MAX_SCHEMA_NODES} values"
    try:
        text = json.dumps(schema, sort_keys=True, ensure_ascii=False)
        size = len(text.encode())
    except (TypeError, ValueError, UnicodeEncodeError):
        return "the output schema is not encodable JSON"
    if size > MAX_SCHEMA_BYTES:
        return f"the output schema is {size} bytes, over the limit of {MAX_SCHEMA_BYTES}"
    return _checked(text)[1]


async def check_request_schema(request: LlmRequest) -> None:
    """Raise WireError(malformed) when request's output schema is unusable; off the loop.

    A schema checked before (agents send the same few) gets its verdict from memory, on the
    loop: no worker-thread hop per request, and no busy router refusing a good schema
    because its check waited past CHECK_TIMEOUT_S behind other work."""
    if request.output_schema is None:
        return
    schema = request.output_schema.schema
    try:
        key: bytes | None = msgspec.json.encode(schema)  # same keys, same order: same schema
    except (TypeError, ValueError, msgspec.EncodeError):
        key = None  # not JSON: schema_problem says why
    problem = _VERDICTS.get(key) if key is not None else None
    if problem is None:
        check = _schema_check(key, schema)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                problem = await _outcome(check.future)
        except TimeoutError:
            problem = f"the output schema took over {CHECK_TIMEOUT_S:g}s to check"
        finally:
            _stop_waiting(key, check)
    if problem:
        raise WireError(ErrorCode.MALFORMED, problem)


@dataclass
class _Check:
    """A schema check queued or under way, and how many requests wait for it."""

    future: concurrent.futures.Future[str]
    waiters: int = 1


def _schema_check(key: bytes | None, schema: object) -> _Check:
    """The check of a schema, on the schema checks' own threads: the one under way for the
    same schema if there is one, so a schema sent again while it is checked costs no second
    check. Its verdict is kept when it ends, also for a request that stopped waiting (a
    timeout): a slow schema sent again gets it from memory instead of another check (five
    resends of a 59 KB schema took 2.5 s of CPU). One still queued when its last waiter
    stops is dropped (_stop_waiting), so a burst of slow schemas leaves no backlog."""
    with _KEEPING:
        shared = _CHECKING.get(key) if key is not None else None
        if shared is not None:
            shared.waiters += 1
            return shared
        check = _Check(_CHECKS.submit(schema_problem, schema))
        if key is not None:
            _CHECKING[key] = check
    if key is not None:
        check.future.add_done_callback(functools.partial(_keep_verdict, key, check))
    return check


def _stop_waiting(key: bytes | None, check: _Check) -> None:
    """A request stops waiting for check: the last one to stop drops it if it has not
    started (one started runs on, and its verdict is kept)."""
    with _KEEPING:  # reentrant: a cancel runs _keep_verdict here, in this thread
        check.waiters -= 1
        if check.waiters == 0:
            check.future.cancel()  # a no-op once it runs or is done


async def _outcome(check: concurrent.futures.Future[str]) -> str:
    """Wait for a check without owning it: a waiter that stops (a timeout) cancels nothing,
    where asyncio.wrap_future would cancel a queued check that other requests wait for."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[str] = loop.create_future()

    def settle() -> None:
        if waiter.done():
            return
        if check.cancelled():
            waiter.cancel()
        elif (exc := check.exception()) is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(check.result())

    def done(_: concurrent.futures.Future[str]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits now
            loop.call_soon_threadsafe(settle)

    check.add_done_callback(done)
    return await waiter


def _keep_verdict(key: bytes, check: _Check, future: concurrent.futures.Future[str]) -> None:
    """Keep a finished check's verdict (an exception or a drop is not one: the next request
    checks again). Runs in the checking thread, or in the caller's if it was done already."""
    with _KEEPING:
        if _CHECKING.get(key) is check:
            del _CHECKING[key]
        if future.cancelled() or future.exception() is not None:
            return
        _VERDICTS[key] = future.result()
        while len(_VERDICTS) > KNOWN_SCHEMAS:
            _VERDICTS.pop(next(iter(_VERDICTS)))


def linear_schema(schema: object) -> bool:
    """Whether checking an answer against schema takes time linear in the answer: at most
    LINEAR_SCHEMA_OBJECTS objects, none with a keyword of SUPERLINEAR_KEYWORDS (a property
    named like one counts too: such a schema is only checked off the loop)."""
    for count, node in enumerate(schema_objects(schema), 1):
        if count > LINEAR_SCHEMA_OBJECTS or not SUPERLINEAR_KEYWORDS.isdisjoint(node):
            return False
        allowed = node.get("enum")
        if isinstance(allowed, list) and len(allowed) > LINEAR_ENUM_VALUES:
            return False  # each value met is compared with every allowed one
    return True


@dataclass(frozen=True, slots=True)
class _AnswerCheck:
    """What checking answers against one schema needs: its validator, or why it has none."""

    validator: Any
    problem: str
    on_loop: bool
    """Whether a short answer may be checked on the event loop (linear_schema)."""


_ANSWER_CHECKS: dict[bytes, _AnswerCheck] = {}
"""Answer checks of schemas seen before, by their JSON as sent, oldest first."""
_ANSWER_CHECKS_LOCK = threading.Lock()


def _answer_check(schema: dict[str, object]) -> _AnswerCheck:
    """The schema's answer check, kept for the next answer (answers are checked in worker
    threads too, hence the lock)."""
    try:
        key: bytes | None = msgspec.json.encode(schema)
    except (TypeError, ValueError, msgspec.EncodeError):
        key = None  # not JSON: schema_problem says why
    known = _ANSWER_CHECKS.get(key) if key is not None else None
    if known is not None:
        return known
    problem = schema_problem(schema)
    validator = None
    if not problem:
        validator = _checked(json.dumps(schema, sort_keys=True, ensure_ascii=False))[0]
    check = _AnswerCheck(validator, problem, not problem and linear_schema(schema))
    if key is not None:
        with _ANSWER_CHECKS_LOCK:
            _ANSWER_CHECKS[key] = check
            while len(_ANSWER_CHECKS) > KNOWN_SCHEMAS:
                _ANSWER_CHECKS.pop(next(iter(_ANSWER_CHECKS)))
    return check


def parse_answer(content: str, schema: dict[str, object]) -> tuple[object | None, str]:
    """(parsed value, "") when content is JSON valid for schema, else (None, the reason)."""
    try:
        value = msgspec.json.decode(content)
    except (msgspec.DecodeError, RecursionError) as exc:
        return None, f"answer is not JSON: {exc}"
    return _checked_value(value, _answer_check(schema), answer_steps(content), hand_on=False)


def _checked_value(
    value: object, check: _AnswerCheck, steps: int, *, hand_on: bool
) -> tuple[object | None, str]:
    """A decoded answer checked within steps; hand_on: raise CheckTooLongError past them
    (the caller goes on elsewhere) instead of refusing the answer."""
    if check.problem:
        return None, check.problem
    validator = check.validator
    try:
        with step_budget(steps):
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except CheckTooLongError:
        if hand_on:
            raise
        return None, (
            f"answer could not be checked against the schema within {steps:,} steps"
            f" ({WORK_MULTIPLIERS})"
        )
    except (
        RecursionError, Unresolvable, jsonschema.exceptions.ValidationError,
        OverflowError, ValueError, TypeError,  # a 4,000-digit number against multipleOf 0.01
    ) as exc:  # fmt: skip
        return None, f"answer could not be checked against the schema ({type(exc).__name__})"
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        message = error.message  # it may repr the instance: the reason stays short
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + "..."
        return None, f"answer does not match the schema at {where[:200]}: {message}"
    return value, ""


async def parse_answer_off_loop(
    content: str, schema: dict[str, object]
) -> tuple[object | None, str]:
    """parse_answer in a worker thread, bounded in time: the event loop never waits on it.

    A short answer against a schema seen before that linear_schema admits is checked on the
    loop instead, within ON_LOOP_STEPS: the hop would cost more than the check. One that
    needs more goes to the thread after all, with its whole budget."""
    check = _kept_check(schema) if len(content) <= INLINE_ANSWER_CHARS else None
    if check is not None and check.on_loop:
        try:
            value = msgspec.json.decode(content)
        except (msgspec.DecodeError, RecursionError) as exc:
            return None, f"answer is not JSON: {exc}"
        try:
            return _checked_value(value, check, ON_LOOP_STEPS, hand_on=True)
        except CheckTooLongError:
            pass  # more work than the loop may give it
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await asyncio.to_thread(parse_answer, content, schema)
    except TimeoutError:
        return None, f"answer took over {CHECK_TIMEOUT_S:.0f}s to check against the schema"


def _kept_check(schema: dict[str, object]) -> _AnswerCheck | None:
    """The check kept for a schema seen before, or None (a new schema's first check runs in
    a worker thread, which keeps it)."""
    try:
        return _ANSWER_CHECKS.get(msgspec.json.encode(schema))
    except (TypeError, ValueError, msgspec.EncodeError):
        return None


@functools.lru_cache(maxsize=512)
def _checked(schema_json: str) -> tuple[Any, str]:
    """(validator, "") for a bounded schema's JSON, or (None, why it is refused)."""
    schema = json.loads(schema_json)
    problem = _foreign_reference(schema)
    if problem:
        return None, problem
    dialect = schema.get("$schema")
    known = isinstance(dialect, str) and validator_for(schema, default=cast(Any, None)) is not None
    if dialect is not None and not known:
        return None, f"the output schema names an unknown dialect {str(dialect)[:80]!r}"
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return None, f"the output schema is invalid at {where}: {exc.message[:200]}"
    problem = pattern_problem(schema)
    if problem:
        return None, problem
    validator = bounded(linear(cls))(schema, registry=_NO_RETRIEVAL)
    for probe in PROBES:
        try:
            with step_budget(MAX_PROBE_STEPS):
                for _ in validator.iter_errors(probe):
                    pass
        except CheckTooLongError:
            return None, (
                f"the output schema takes over {MAX_PROBE_STEPS:,} steps to check {probe!r}"
                f" ({WORK_MULTIPLIERS})"
            )
        except RecursionError:
            return None, "the output schema refers to itself without end"
        except Unresolvable as exc:
            return None, f"the output schema has an unresolvable reference: {str(exc)[:120]}"
        except (OverflowError, ValueError, TypeError) as exc:  # multipleOf 1e400 and the like
            reason = f"{type(exc).__name__}: {str(exc)[:120]}"
            return None, f"the output schema cannot be checked on {probe!r} ({reason})"
    return validator, ""


def _foreign_reference(schema: dict[str, Any]) -> str:
    """Why schema refers outside itself (a URL, a file, a relative URI), or ""."""
    for node in schema_objects(schema):
        for key in REF_KEYWORDS:
            value = node.get(key)
            if isinstance(value, str) and not value.startswith("#"):
                return f"the output schema refers outside itself ({key} {value[:80]!r}): refused"
    return ""
