"""A fake Telegram Bot API on 127.0.0.1 for tests (aiohttp).

Answers `POST /bot<token>/sendMessage` (and `getMe`).  By default every
request succeeds; tests queue behaviours that are consumed one per request:

    async with FakeTelegram() as tg:
        tg.push(Status(429, retry_after=1), Status(500), Hang(2.0))
        ... point TelegramNotifier(api_url=tg.url, token=tg.token) at it ...
        await tg.wait_for_messages(1)

`requests` records every request (arrival time on the loop clock, path
token, JSON body, the answer given); `messages` only those answered 200,
i.e. what a chat would actually show.  A wrong token gets 401 like the real
API.  Can also run standalone: `python -m tests.service.fake_telegram PORT`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijKLMN"


@dataclass(slots=True, frozen=True)
class Ok:
    pass


@dataclass(slots=True, frozen=True)
class Status:
    """Answer with an HTTP error like Telegram does (JSON body with error_code)."""

    status: int
    retry_after: float | None = None
    description: str | None = None
    retry_after_header: bool = False


@dataclass(slots=True, frozen=True)
class Hang:
    """Accept the request and never answer in time (answers 500 after `seconds`)."""

    seconds: float = 5.0


Behaviour = Ok | Status | Hang


@dataclass(slots=True)
class Request:
    at: float  # loop.time() on arrival
    token: str
    method: str
    body: Any
    answer: str = ""
    headers: dict[str, str] = field(default_factory=dict)


_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class FakeTelegram:
    def __init__(self, token: str = DEFAULT_TOKEN, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.default: Behaviour = Ok()
        self.requests: list[Request] = []
        self.messages: list[dict[str, Any]] = []
        self._script: deque[Behaviour] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._changed = asyncio.Condition()

    # -- control ------------------------------------------------------------

    def push(self, *behaviours: Behaviour) -> None:
        self._script.extend(behaviours)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def wait_for_messages(self, n: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout_s):
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.messages) >= n)
        return self.messages

    async def wait_for_requests(self, n: int, timeout_s: float = 5.0) -> list[Request]:
        async with asyncio.timeout(timeout_s):
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.requests) >= n)
        return self.requests

    # -- server ---------------------------------------------------------------

    async def start(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        # access_log=None: the request path carries the token, and tests assert
        # the token never shows up in captured logs.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        rec = Request(at=loop.time(), token=request.match_info["token"], method=request.match_info["method"],
                      body=body, headers=dict(request.headers))
        self.requests.append(rec)
        await self._notify()
        if rec.token != self.token:
            rec.answer = "401"
            return self._error(401)
        behaviour = self._script.popleft() if self._script else self.default
        if isinstance(behaviour, Hang):
            rec.answer = "hang"
            try:
                await asyncio.wait_for(self._closing.wait(), behaviour.seconds)
            except TimeoutError:
                pass
            return self._error(500)
        if isinstance(behaviour, Status):
            rec.answer = str(behaviour.status)
            return self._error(behaviour.status, behaviour.retry_after, behaviour.description,
                               behaviour.retry_after_header)
        if rec.method == "getMe":
            rec.answer = "200"
            return web.json_response({"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "fake"}})
        if rec.method != "sendMessage" or not isinstance(body, dict) or "chat_id" not in body or not body.get("text"):
            rec.answer = "400"
            return self._error(400, description="Bad Request: message text is empty")
        rec.answer = "200"
        message = {
            "message_id": next(self._ids),
            "chat": {"id": body["chat_id"]},
            "date": int(time.time()),
            "text": body["text"],
            "parse_mode": body.get("parse_mode"),
            "received_at": rec.at,
        }
        self.messages.append(message)
        await self._notify()
        return web.json_response({"ok": True, "result": message})

    @staticmethod
    def _error(status: int, retry_after: float | None = None, description: str | None = None,
               header: bool = False) -> web.Response:
        desc = description or _DESCRIPTIONS.get(status, "Error").format(retry_after=retry_after)
        payload: dict[str, Any] = {"ok": False, "error_code": status, "description": desc}
        headers = {}
        if retry_after is not None:
            if header:
                headers["Retry-After"] = f"{retry_after:g}"
            else:
                payload["parameters"] = {"retry_after": retry_after}
        return web.json_response(payload, status=status, headers=headers)


async def _main(port: int) -> None:  # pragma: no cover - manual use
    async with FakeTelegram(port=port) as tg:
        print(f"fake Telegram on {tg.url} token {tg.token}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 8081))
