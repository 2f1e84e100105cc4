"""The HTTP face of the emulator: Telegram's URL layout (`/bot<token>/<method>`, `/file/bot<token>/<path>`), its
token and unknown-method answers, the `{"ok": ..., "result"|"description": ...}` envelope, and the hooks tests use
to make Telegram misbehave (injected faults and delays). Binds 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.emulator import errors as E
from bot.emulator.api import BotApi
from bot.emulator.media import MAX_DOCUMENT_BYTES
from bot.emulator.params import read_params

LOCALHOST = "127.0.0.1"
_API_PATH = re.compile(r"/bot([^/]*)/([^/]*)")
_FILE_PATH = re.compile(r"/file/bot([^/]*)/(.+)")
_WELL_FORMED_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]{20,}")


@dataclass
class Fault:
    """Makes the next `times` calls of a method (lower-case name, or "*") wait `delay` seconds, then fail with
    `error` if one is given. This is how a test stages a Telegram outage or a slow API."""

    method: str
    error: E.ApiError | None = None
    delay: float = 0.0
    times: int = 1


@dataclass
class EmulatorServer:
    api: BotApi
    host: str = LOCALHOST
    port: int = 0
    faults: list[Fault] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        # Room for a 50 MB document plus form overhead.
        app = web.Application(client_max_size=MAX_DOCUMENT_BYTES + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self) -> None:
        if self.host != LOCALHOST:
            raise ValueError("the emulator serves 127.0.0.1 only")
        # Long polls are woken by `closing`, so a short grace period is enough.
        self._runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        world = self.api.world
        with world.lock:
            world.closing = True
        world.changed()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_fault(self, fault: Fault) -> None:
        with self.api.world.lock:
            self.faults.append(fault)

    def _take_fault(self, method: str) -> Fault | None:
        with self.api.world.lock:
            for fault in self.faults:
                if fault.method in (method, "*") and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        match = _API_PATH.fullmatch(path)
        if match:
            return await self._api_call(request, match.group(1), match.group(2))
        match = _FILE_PATH.fullmatch(path)
        if match:
            return self._file(match.group(1), match.group(2))
        return _error(E.NOT_FOUND)

    def _token_error(self, token: str) -> E.ApiError | None:
        if token == self.api.world.bot.token:
            return None
        # Telegram answers a token of the right shape with 401 and anything else with 404.
        return E.UNAUTHORIZED if _WELL_FORMED_TOKEN.fullmatch(token) else E.NOT_FOUND

    async def _api_call(self, request: web.Request, token: str, method: str) -> web.Response:
        denied = self._token_error(token)
        if denied is not None:
            return _error(denied)
        name = method.lower()
        try:
            params = await read_params(request)
        except E.ApiError as exc:
            return _error(exc)
        fault = self._take_fault(name)
        try:
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.error is not None:
                    raise fault.error
            result: Any = await self.api.call(name, params)
        except E.ApiError as exc:
            self.api.world.record_call(method, params.loggable(), exc.description)
            return _error(exc)
        self.api.world.record_call(method, params.loggable(), None)
        return web.json_response({"ok": True, "result": result})

    def _file(self, token: str, file_path: str) -> web.Response:
        denied = self._token_error(token)
        if denied is not None:
            return _error(denied)
        stored = self.api.file_by_path(file_path)
        if stored is None:
            return _error(E.NOT_FOUND)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")


def _error(error: E.ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.error_code)
