"""create_app(): settings, database, middleware, routes, error pages, and the in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app import htmx
from app.db import Database, set_db_threads
from app.live import Hub
from app.middleware import PlenaryMiddleware
from app.routes import routes
from app.settings import Settings
from app.templating import error_response, templates
from app.web import SignInRequired, signin_url

log = logging.getLogger("plenary")

# Paths whose unsafe requests skip the CSRF check because they authenticate themselves: the one-click
# unsubscribe is POSTed by mail providers, without cookies, and its signed token can only unsubscribe; the inbound
# mail webhook is POSTed by a mail provider with the shared secret (PLENARY_INBOUND_SECRET).
CSRF_EXEMPT = ("/healthz", "/unsubscribe/", "/inbound/email")


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    set_db_threads(settings.db_threads, settings.database_url)
    database = db or Database(settings.database_url)
    # Outside development a template is read once: checking its file's time on every render (and on every
    # {% include %}, 50 a page of comments) costs more than rendering it.
    templates.env.auto_reload = settings.env == "dev"
    hub = Hub(database)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from app.members.services import load_org_state

        load_org_state(app)
        await hub.start()
        worker_task = None
        if settings.run_worker:
            from app.jobs.worker import run_forever

            worker_task = asyncio.create_task(run_forever(settings, database, name="web"))
        try:
            yield
        finally:
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await hub.stop()
            if db is None:
                database.dispose()

    app = Starlette(
        debug=False,
        routes=routes,
        middleware=[Middleware(PlenaryMiddleware, exempt=CSRF_EXEMPT)],
        exception_handlers={HTTPException: _http_error, SignInRequired: _sign_in_first, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.live = hub  # open pages' live updates (app/live.py)
    app.state.org_name = None
    app.state.org_tz = "UTC"
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    try:
        default = HTTPStatus(exc.status_code).phrase
    except ValueError:
        default = ""
    custom = exc.detail if exc.detail and exc.detail != default else None
    return error_response(request, exc.status_code, custom)


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    url = signin_url(exc.next_path)
    if htmx.is_htmx(request):
        return htmx.redirect(Response(status_code=204), url)
    return RedirectResponse(url, status_code=303)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, 500)
