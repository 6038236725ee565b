"""Who is calling: API keys mapped to tenants, checked on every /v1/* and /api/* request.

Keys are kept only as SHA-256 digests (a key may also be configured as "sha256:<hex>", so the
clear key never has to be on the server). A presented key is hashed and compared against every
digest with ``hmac.compare_digest``, without stopping at a match, so the time taken says nothing
about which key (if any) matched. The tenant comes from the key, never from the request: a
request naming another tenant (a ``tenant`` path or query parameter, or the upload's form
field) is refused with 403, except for operator keys (tenant "*"), and a tenant's key that
names no tenant on /api/* gets its own tenant filled in.

A key may also be bound to a workspace, or a workspace and a project: its value is then
"tenant/workspace" or "tenant/workspace/project". Its calls are made in that workspace (and
project); a call naming another one is refused with 403, and on /api/* its reports are
narrowed to it the same way as to its tenant.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from api.key_digest import DIGEST_PREFIX, digest
from bus import subjects
from bus.messages import DEFAULT_PROJECT, DEFAULT_WORKSPACE
from bus.settings import Settings

OPERATOR = "*"
"""The tenant of an operator key: it may read every tenant."""
PROTECTED_PREFIXES = ("/v1/", "/api/")
"""Paths that need a key; pages (the dashboard, /asyncapi, /healthz) do not."""
CALLER_STATE = "flipsync_caller"


BIND_SEP = "/"
"""Separates a key's tenant, workspace and project in its configured value."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the tenant its key belongs to, and the workspace and project
    it is bound to (None: the call names its own)."""

    tenant: str
    workspace: str | None = None
    project: str | None = None

    def place(self, workspace: str | None, project: str | None) -> tuple[str, str]:
        """The workspace and project a call naming these (None: not named) is made in; raises
        AuthError (403) when the key is bound to another one."""
        for what, bound, named in (
            ("workspace", self.workspace, workspace),
            ("project", self.project, project),
        ):
            if bound is not None and named is not None and named != bound:
                raise AuthError(
                    403,
                    f"this API key is bound to {what} {bound!r} and may not act in "
                    f"{what} {named!r}",
                    f"forbidden_{what}",
                )
        return (
            self.workspace or workspace or DEFAULT_WORKSPACE,
            self.project or project or DEFAULT_PROJECT,
        )

    @property
    def operator(self) -> bool:
        """Whether this is an operator key, allowed to read any tenant."""
        return self.tenant == OPERATOR

    def may_act_for(self, tenant: str) -> bool:
        """Whether this caller may read or write tenant's data."""
        return self.operator or hmac.compare_digest(self.tenant.encode(), tenant.encode())


class AuthError(Exception):
    """A request without a valid key (401) or for another tenant (403)."""

    def __init__(self, status: int, reason: str, code: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code

    def response(self) -> JSONResponse:
        """The JSON answer, in OpenAI's error shape (so OpenAI clients read it too)."""
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return error_response(self.status, self.reason, code=self.code, headers=headers)


class ApiKeys:
    """The configured keys, as digests, each with its tenant."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._digests: list[tuple[bytes, Caller]] = []
        for key, value in keys.items():
            stored = key if key.startswith(DIGEST_PREFIX) else digest(key)
            self._digests.append((stored.encode(), bound_caller(value)))

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """The keys of FLIPSYNC_API_KEYS and of FLIPSYNC_API_KEYS_FILE (a JSON object)."""
        keys = dict(settings.api_keys)
        if settings.api_keys_file is not None:
            loaded = json.loads(Path(settings.api_keys_file).read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise ValueError(f"{settings.api_keys_file}: expected a JSON object key -> tenant")
            keys.update({str(k): str(v) for k, v in loaded.items()})
        return cls(keys)

    def __len__(self) -> int:
        """How many keys are configured."""
        return len(self._digests)

    def tenant_of(self, key: str) -> str | None:
        """The tenant of a presented key, or None; constant time in which key matched."""
        caller = self.caller_of(key)
        return caller.tenant if caller is not None else None

    def caller_of(self, key: str) -> Caller | None:
        """The caller (tenant, bound workspace and project) of a presented key, or None;
        constant time in which key matched."""
        presented = digest(key).encode()
        found: Caller | None = None
        for stored, caller in self._digests:
            if hmac.compare_digest(stored, presented):
                found = caller
        return found


def bound_caller(value: str) -> Caller:
    """The caller a key's configured value names: "tenant", "tenant/workspace" or
    "tenant/workspace/project" (each a subject token); ValueError if it is none of these."""
    parts = value.split(BIND_SEP)
    if len(parts) > 3:
        raise ValueError(f"API key value {value!r}: at most tenant/workspace/project")
    tenant = parts[0]
    if tenant == OPERATOR:
        if len(parts) > 1:
            raise ValueError("an operator key (tenant '*') cannot be bound to a workspace")
        return Caller(tenant)
    for part in parts:
        subjects.token(part)  # each must be usable as a subject token
    workspace = parts[1] if len(parts) > 1 else None
    project = parts[2] if len(parts) > 2 else None
    return Caller(tenant, workspace, project)


def protected(path: str) -> bool:
    """Whether a path needs an API key."""
    return path.startswith(PROTECTED_PREFIXES)


def authenticate(request: Request, keys: ApiKeys) -> Caller:
    """The caller of a request with "Authorization: Bearer <key>"; raises AuthError (401)."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise AuthError(401, "missing API key: send Authorization: Bearer <key>", "missing_api_key")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthError(401, "malformed Authorization header: expected Bearer <key>", "bad_auth")
    caller = keys.caller_of(key.strip())
    if caller is None:
        raise AuthError(401, "invalid API key", "invalid_api_key")
    return caller


def check_tenant(caller: Caller, tenant: str) -> None:
    """Raise AuthError (403) unless caller may act for tenant."""
    if not caller.may_act_for(tenant):
        raise AuthError(
            403, f"this API key is not allowed to access tenant {tenant!r}", "forbidden"
        )


def caller_of(request: Request) -> Caller:
    """The caller the guard authenticated for this request (the guard must have run)."""
    caller = getattr(request.state, CALLER_STATE, None)
    if not isinstance(caller, Caller):
        raise AuthError(401, "request was not authenticated", "missing_api_key")
    return caller


class ApiKeyMiddleware:
    """Authenticates every protected path before routing; 401/403 answers end there.

    For a tenant's key on /api/*, a ``tenant`` query parameter must be the key's tenant, and
    one is added when absent: views that default to "all tenants" see only the caller's.
    """

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate an HTTP request to a protected path, then pass it on."""
        if scope["type"] != "http" or not protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            caller = authenticate(request, self.keys)
            if scope["path"].startswith("/api/") and not caller.operator:
                scope["query_string"] = _scoped_query(request, caller)
        except AuthError as exc:
            await exc.response()(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER_STATE] = caller
        await self.app(scope, receive, send)


def _scoped_query(request: Request, caller: Caller) -> bytes:
    """The query string with tenant (and a bound key's workspace and project) set to the
    caller's; AuthError if it named another."""
    pairs = list(request.query_params.multi_items())
    named = [value for key, value in pairs if key == "tenant"]
    for tenant in named:
        check_tenant(caller, tenant)
    if not named:
        pairs.append(("tenant", caller.tenant))
    for what, bound in (("workspace", caller.workspace), ("project", caller.project)):
        if bound is None:
            continue
        asked = [value for key, value in pairs if key == what]
        for value in asked:
            caller.place(value if what == "workspace" else None,
                         value if what == "project" else None)  # fmt: skip
        if not asked:
            pairs.append((what, bound))
    return urlencode(pairs).encode()


async def path_tenant_guard(request: Request) -> None:
    """An app-wide dependency: a ``tenant`` path parameter must be the caller's (else 403)."""
    named = request.path_params.get("tenant")
    if protected(request.url.path) and isinstance(named, str):
        check_tenant(caller_of(request), named)


def form_tenant_check(request: Request, tenant: str) -> None:
    """The upload route's hook: the form's tenant must be the caller's."""
    check_tenant(caller_of(request), tenant)
