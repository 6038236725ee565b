"""The operator dashboard: one HTML page and its static assets, served by the HTTP API.

The page holds no data: its script fetches the cost views (cost_ledger/http.py) with the API
key the operator gives it, so the page and its assets are served without authentication. Every
asset is a file under api/static/ (Chart.js is vendored there), so the page never reaches a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).parent / "static"
"""The page, its stylesheet, its scripts and the vendored chart library."""
DASHBOARD_PATH = "/dashboard"
ASSETS_PATH = "/dashboard/assets"
PAGE = "dashboard.html"

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
# Only our own scripts and styles, and fetches to this origin: no CDN, no inline script.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def dashboard_router(static_dir: Path = STATIC_DIR) -> APIRouter:
    """GET /dashboard (the page) and GET /dashboard/assets/<file> (its CSS, JS and library)."""
    assets = _assets(static_dir)
    router = APIRouter(tags=["dashboard"])

    @router.get(DASHBOARD_PATH, include_in_schema=False)
    async def dashboard_page() -> FileResponse:
        """The dashboard page."""
        return _file(assets, PAGE)

    @router.get(ASSETS_PATH + "/{name:path}", include_in_schema=False)
    async def dashboard_asset(name: str) -> FileResponse:
        """One static asset of the page, by its path under api/static/."""
        return _file(assets, name)

    return router


def _assets(static_dir: Path) -> dict[str, Path]:
    """Every servable file by its path under static_dir: a fixed map, so no path escapes it."""
    return {
        path.relative_to(static_dir).as_posix(): path
        for path in sorted(static_dir.rglob("*"))
        if path.is_file() and path.suffix in _MEDIA_TYPES
    }


def _file(assets: dict[str, Path], name: str) -> FileResponse:
    path = assets.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no dashboard asset {name!r}")
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_HEADERS)
