"""The aiohttp application: /health, /status, /alerts, /metrics, /live and the dashboard.

    app = create_app(monitor, status_token=os.environ.get("STATUS_TOKEN") or None)
    runner, site = await start_server(app, "0.0.0.0", 8080)
    ...
    await runner.cleanup()        # stops the live ticker and closes streams

Routes (all GET):

    /health         200 {"status": "ok" | "degraded", "problems": [...]} while a book is
                    valid and fresh, else 503; ?strict=1: 503 while degraded too
    /status         the status document (docs/status.md)
    /alerts         ?limit=1..1000 &symbol=BASE-QUOTE &since=<unix ms | ISO-8601>
                    &cursor=<next_cursor of the previous page> (newest first, paged)
    /metrics        Prometheus text exposition
    /live           Server-Sent Events for the dashboard (see live.py)
    /               the dashboard; /static/* its assets

Access control: when `status_token` is set, every route but /health needs it,
given as `Authorization: Bearer <token>`, as the `sentrycoin_token` cookie,
or as `?token=<token>`.  A browser opens `/?token=<token>` once: the server
answers with an HttpOnly SameSite=Strict cookie and a redirect to `/`, so the
token leaves the address bar and the page's own requests (fetch, EventSource)
carry the cookie.  Opening `/` without it shows a small form asking for the
token.  Comparisons are constant-time; the token is never logged: every
logged URL goes through `sentrycoin.logs.redact_url_secrets`, and aiohttp's
own request errors become one redacted, rate-limited line (logs.py).

Every response carries `X-Content-Type-Options: nosniff`, `X-Frame-Options:
DENY`, a CSP with `frame-ancestors 'none'`, and `Server: sentrycoin` (no
version).

/alerts never touches SQLite on the event loop: it reads through the alert
manager's `StoreWorker` (reader thread), one keyset page at a time, and the
outcome summary (a whole-table aggregate) is cached for
`SUMMARY_CACHE_S`.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from sentrycoin.logs import install_server_log_filter, redact_url_secrets, register_secret
from sentrycoin.server.live import LiveHub
from sentrycoin.server.metrics import build_registry
from sentrycoin.server.protocols import AlertStoreLike, MonitorLike
from sentrycoin.server.status import alert_problems, health, status_document

log = logging.getLogger("sentrycoin.server")

STATIC_DIR = Path(__file__).with_name("static")
TOKEN_COOKIE = "sentrycoin_token"
MAX_ALERTS_LIMIT = 1000
#: /alerts reuses the outcome summary (a whole-table aggregate) until the store has
#: written something since, and at most this long.
SUMMARY_CACHE_S = 10.0
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")
_CURSOR_RE = re.compile(r"^(\d{1,16})_(\d{1,19})$")
#: The Server header: no version (it would tell a scanner which CVEs to try).
SERVER_HEADER = "sentrycoin"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}



def _enc_fallback(obj: Any) -> Any:
    # settings_redacted() may hold Paths, enums or dataclass-like values: show them as text
    # rather than failing /status with a 500.
    return str(obj)


_encode = msgspec.json.Encoder(enc_hook=_enc_fallback).encode


# -- app keys -------------------------------------------------------------------

MONITOR_KEY = web.AppKey("monitor", MonitorLike)
HUB_KEY = web.AppKey("live_hub", LiveHub)
REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)
SUMMARY_KEY = web.AppKey("outcome_summary_cache", dict)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


# -- auth -------------------------------------------------------------------------


def _token_ok(given: str | None, expected: bytes) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected)


def _auth_middleware(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = token.encode("utf-8", "surrogateescape")

    @web.middleware
    async def auth(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path == "/health":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
        query_token = request.query.get("token")
        if (_token_ok(bearer, expected) or _token_ok(request.cookies.get(TOKEN_COOKIE), expected)
                or _token_ok(query_token, expected)):
            if query_token is not None and request.path == "/" and _token_ok(query_token, expected):
                # Trade the URL token for a cookie and drop it from the address bar.
                response = web.Response(status=302, headers={"Location": "/", "Cache-Control": "no-store"})
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
                return response
            return await handler(request)
        if request.path == "/":
            return web.Response(status=401, text=_LOGIN_PAGE, content_type="text/html",
                                headers={"WWW-Authenticate": 'Bearer realm="sentrycoin"'})
        response = _error(401, "unauthorized: send 'Authorization: Bearer <STATUS_TOKEN>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="sentrycoin"'
        return response

    return auth


_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SentryCoin - token required</title><style>
:root{color-scheme:light dark;font-family:system-ui,sans-serif}
body{display:grid;place-items:center;min-height:100vh;margin:0}
form{display:grid;gap:.7rem;padding:2rem;border:1px solid #8884;border-radius:12px;min-width:18rem}
h1{margin:0;font-size:1.3rem}input,button{font:inherit;padding:.5rem;border-radius:6px}
</style></head>
<body><form method="get" action="/">
<h1>SentryCoin</h1><p>This dashboard is protected. Enter the STATUS_TOKEN.</p>
<input type="password" name="token" autocomplete="current-password" autofocus required>
<button type="submit">Open dashboard</button></form></body></html>"""


# -- handlers -----------------------------------------------------------------------


_STRICT_VALUES = {"": False, "0": False, "false": False, "no": False, "1": True, "true": True, "yes": True}


def parse_health_query(query: Mapping[str, str]) -> bool:
    """`strict` from /health's query; ValueError naming what was written."""
    unknown = sorted(set(query) - {"strict", "token"})
    if unknown:
        raise ValueError(f"unknown query parameter(s): {', '.join(unknown)} (use strict)")
    raw = query.get("strict", "")
    strict = _STRICT_VALUES.get(raw.strip().lower())
    if strict is None:
        raise ValueError(f"strict must be 1 or 0 (or true/false), got {raw!r}")
    return strict


async def _health(request: web.Request) -> web.Response:
    try:
        strict = parse_health_query(request.query)
    except ValueError as exc:
        return _error(400, str(exc))
    status, body = health(request.app[MONITOR_KEY], strict=strict)
    return _json(body, status=status)


async def _status(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    return _json(status_document(request.app[MONITOR_KEY], hub.rates))


def _parse_since(raw: str) -> int:
    """Unix milliseconds, or an ISO-8601 time (naive means UTC)."""
    raw = raw.strip()
    if re.fullmatch(r"\d{1,16}", raw):
        return int(raw)
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"since must be Unix milliseconds or an ISO-8601 time, got {raw!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def parse_alert_query(query: Mapping[str, str]) -> tuple[int, str | None, int | None]:
    """(limit, symbol, since_ms) from /alerts' query; ValueError with a clear message."""
    unknown = sorted(set(query) - {"limit", "symbol", "since", "token", "cursor"})
    if unknown:
        raise ValueError(f"unknown query parameter(s): {', '.join(unknown)} (use limit, symbol, since, cursor)")
    limit = 100
    if "limit" in query:
        raw = query["limit"].strip()
        if not re.fullmatch(r"\d{1,7}", raw) or not 1 <= int(raw) <= MAX_ALERTS_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_ALERTS_LIMIT}, got {query['limit']!r}")
        limit = int(raw)
    symbol = None
    if "symbol" in query:
        symbol = query["symbol"].strip().upper()
        if not _SYMBOL_RE.match(symbol):
            raise ValueError(f"symbol must be in BASE-QUOTE form like BTC-USDT, got {query['symbol']!r}")
    since_ms = _parse_since(query["since"]) if "since" in query else None
    return limit, symbol, since_ms


def parse_cursor(raw: str | None) -> tuple[int, int] | None:
    """/alerts `cursor` (the `next_cursor` of the previous page): '<event_ms>_<id>'."""
    if raw is None:
        return None
    match = _CURSOR_RE.match(raw.strip())
    if match is None:
        raise ValueError(f"cursor must be the next_cursor of a previous page, got {raw!r}")
    return int(match.group(1)), int(match.group(2))


async def _alerts(request: web.Request) -> web.Response:
    try:
        limit, symbol, since_ms = parse_alert_query(request.query)
        cursor = parse_cursor(request.query.get("cursor"))
    except ValueError as exc:
        return _error(400, str(exc))
    manager = request.app[MONITOR_KEY].alert_manager
    store = getattr(manager, "store", None) if manager is not None else None
    if store is None:
        return _json({"alerts": [], "count": 0, "outcomes": None, "store": False, "next_cursor": None,
                      "limit": limit, "symbol": symbol, "since_ms": since_ms})
    try:
        rows, next_cursor = await store.read(
            lambda s: s.recent_page(limit=limit, symbol=symbol, since_ms=since_ms, before=cursor))
        summary = await _outcome_summary(request.app, store)
    except Exception as exc:
        store_problems = [p["message"] for p in alert_problems(manager) if p["kind"] == "alert_store"]
        problem = store_problems[0] if store_problems else f"alert store: {type(exc).__name__}"
        log.warning("/alerts: reading the alert store failed (%s)", type(exc).__name__)
        return _error(503, f"{problem}; alerts are still delivered")
    return _json({"alerts": rows, "count": len(rows), "outcomes": summary, "store": True,
                  "next_cursor": f"{next_cursor[0]}_{next_cursor[1]}" if next_cursor else None,
                  "limit": limit, "symbol": symbol, "since_ms": since_ms})


async def _outcome_summary(app: web.Application, store: AlertStoreLike) -> dict[str, Any]:
    now = time.monotonic()
    generation = getattr(store, "writes_total", None)
    cache = app[SUMMARY_KEY]
    if cache and now - cache["at"] < SUMMARY_CACHE_S and cache["generation"] == generation:
        return cache["summary"]
    summary = await store.read(lambda s: s.outcome_summary())
    cache.update(at=now, generation=generation, summary=summary)
    return summary


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# The page loads nothing but its own assets; inline script is never needed.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


async def _live(request: web.Request) -> web.StreamResponse:
    return await request.app[HUB_KEY].handle_sse(request)


def create_app(
    monitor: MonitorLike,
    status_token: str | None = None,
    *,
    tick_s: float = 0.5,
    history_s: float = 300.0,
) -> web.Application:
    """Build the app.  `status_token` (env STATUS_TOKEN) guards all but /health."""
    register_secret(status_token)
    install_server_log_filter()
    middlewares = [_auth_middleware(status_token)] if status_token else []
    app = web.Application(middlewares=middlewares)
    app.on_response_prepare.append(_security_headers)
    app[MONITOR_KEY] = monitor
    app[SUMMARY_KEY] = {}
    app[HUB_KEY] = LiveHub(monitor, tick_s=tick_s, history_s=history_s)
    app[REGISTRY_KEY] = build_registry(monitor)

    async def live_ctx(app: web.Application):
        app[HUB_KEY].start()
        yield
        await app[HUB_KEY].stop()

    app.cleanup_ctx.append(live_ctx)
    # Long-lived SSE responses must end before the runner waits for handlers.
    app.on_shutdown.append(lambda app: app[HUB_KEY].stop())

    app.router.add_get("/health", _health)
    app.router.add_get("/status", _status)
    app.router.add_get("/alerts", _alerts)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/live", _live)
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app


def _harden(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    headers["Server"] = SERVER_HEADER


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response the app makes (handlers, static files, 404s): no sniffing, no framing, no version."""
    _harden(response.headers)


class _HardenedHandler(RequestHandler):
    """Requests aiohttp rejects before the app sees them (oversized, malformed): the same
    headers, and a body that does not echo the raw request back (it may carry a token)."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status != 500:
            message = f"{status} {HTTPStatus(status).phrase}" if status in HTTPStatus._value2member_map_ else "error"
        response = super().handle_error(request, status, exc, message)
        _harden(response.headers)
        return response


class _HardenedServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _HardenedHandler(self, loop=self._loop, **self._kwargs)


class _HardenedRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # Same server, with our protocol handler for requests that never reach the app.
        server.__class__ = _HardenedServer
        return server


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log without secrets (`redact_url_secrets`: token values, bearer credentials)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.path
        if request.query_string:
            path += "?" + request.query_string
        self.logger.info('%s "%s %s" %s %s %.1fms', request.remote, request.method, redact_url_secrets(path),
                         response.status, response.body_length, time * 1000.0)


async def start_server(app: web.Application, host: str = "0.0.0.0",
                       port: int = 8080) -> tuple[web.AppRunner, web.TCPSite]:
    """Start serving; stop with `await runner.cleanup()`.  port=0 picks a free port
    (read it back with `bound_port(runner)`)."""
    runner = _HardenedRunner(app, access_log_class=RedactingAccessLogger,
                           access_log=logging.getLogger("sentrycoin.server.access"),
                           shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("HTTP server on http://%s:%d/", host, bound_port(runner))
    return runner, site


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful after port=0)."""
    return int(runner.addresses[0][1])
