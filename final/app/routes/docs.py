"""Swagger UI and ReDoc, served from the service's own files under a same-origin CSP."""

import base64
import hashlib
import mimetypes
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# FastAPI's own pages load Swagger UI and ReDoc from a CDN: blank pages on a
# train, behind a proxy or in an air-gapped deployment. fastapi-offline ships
# both bundles, released as they are; we use its files, not its app factory.
ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"
# The file system is read here, at import, never on the event loop: StaticFiles
# would read the system's MIME types there when the first asset is asked for.
mimetypes.init()
if not (ASSETS / "swagger-ui-bundle.js").is_file():
    raise RuntimeError(f"Swagger UI's files are missing from {ASSETS}: reinstall fastapi-offline.")

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def content_security_policy(page: str) -> str:
    """A CSP allowing only this origin, plus the page's own inline scripts, pinned by hash."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {hashes}".rstrip(),
            # ReDoc (styled-components) and Swagger UI insert <style> elements as they render.
            "style-src 'self' 'unsafe-inline'",
            # Swagger UI's and ReDoc's icons are data: URIs; ReDoc's search runs in a blob: worker.
            "img-src 'self' data:",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        )
    )


class _Page:
    """A page built once (it never changes while the app runs), answered with its CSP."""

    def __init__(self, page: HTMLResponse) -> None:
        self.html = bytes(page.body).decode()
        self.headers = {"Content-Security-Policy": content_security_policy(self.html)}

    def response(self) -> HTMLResponse:
        return HTMLResponse(self.html, headers=self.headers)


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from local files: FastAPI's documented self-hosting recipe."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS, check_dir=False), name="docs-assets")
    swagger_ui = _Page(
        get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # Keep the token across reloads of the page, as a learner expects.
            swagger_ui_parameters={"persistAuthorization": True},
        )
    )
    oauth2_redirect = _Page(get_swagger_ui_oauth2_redirect_html())
    redoc = _Page(
        get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
    )

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui_html() -> HTMLResponse:
        return swagger_ui.response()

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return oauth2_redirect.response()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc_html() -> HTMLResponse:
        return redoc.response()
