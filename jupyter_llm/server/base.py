"""The handler base of every jupyter_llm route: auth, pydantic bodies, the one error shape,
blocking calls off the event loop, and NDJSON / SSE streaming that cancels on disconnect."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import httputil, web
from tornado.iostream import StreamClosedError

from ..errors import Busy, InvalidRequest, JupyterLLMError, Unauthorized
from ..host.streams import END, CallbackStream
from ..limits import MAX_JSON_DEPTH, check_body_size, check_json_depth
from ..redact import redact

__all__ = ["LLMHandler", "NotFoundHandler", "error_body", "openai_error_body", "STREAM_END",
           "AUTH_MESSAGE", "AUTH_RESOURCE"]

log = logging.getLogger("jupyter_llm.server")

Body = TypeVar("Body", bound=BaseModel)
STREAM_END = END
_HTTP_TYPES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large",
               422: "invalid_request", 501: "not_implemented", 503: "busy"}


AUTH_MESSAGE = ("Invalid or missing token. Send the Jupyter server's token in the "
                "Authorization header, with the scheme `token` or `Bearer` (OpenAI clients: give "
                "it as the API key).")
# OpenAI's error codes for our types where they differ (clients branch on ``error.code``)
_OPENAI_CODES = {"unauthorized": "invalid_api_key", "unknown_model": "model_not_found"}


def error_body(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The one mapping of an exception to ``(status, {"error": ...}, headers)``."""
    if isinstance(exc, JupyterLLMError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else {}
        return exc.status, exc.to_dict(), headers
    if isinstance(exc, web.HTTPError):
        status = exc.status_code
        message = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
        message = message or exc.reason or httputil.responses.get(status, "Error")
        if status == 403 and not exc.log_message:
            message = ("Not authenticated. Send the Jupyter token as `Authorization: token <TOKEN>`"
                       " (or `Bearer <TOKEN>`).")
        kind = _HTTP_TYPES.get(status, "internal_error" if status >= 500 else "invalid_request")
        return status, {"error": {"type": kind, "message": redact(message), "details": None}}, {}
    return 500, {"error": {"type": "internal_error",
                           "message": "Internal server error; the server log has the details.",
                           "details": None}}, {}


def openai_error_body(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``error_body`` as OpenAI's API answers: invalid values are 400 (not 422), and the error
    also carries OpenAI's ``code`` and ``param`` (the first field named in ``details``)."""
    status, body, headers = error_body(exc)
    if status == 422 and isinstance(exc, InvalidRequest):
        status = 400
    err = body["error"]
    details = err.get("details") if isinstance(err.get("details"), dict) else {}
    fields = details.get("fields") or []
    param = details.get("field") or (fields[0].get("field") if fields and
                                      isinstance(fields[0], dict) else None)
    err["code"] = _OPENAI_CODES.get(err["type"], err["type"])
    err["param"] = param
    return status, body, headers


AUTH_RESOURCE = "llm"
"""The resource Jupyter's ``Authorizer`` is asked about for every ``/llm`` route (actions:
``read`` for GET, ``write`` for POST and DELETE), so a custom Authorizer (JupyterHub roles)
can govern them; ``@web.authenticated`` still requires a user first."""


class LLMHandler(APIHandler):
    """Base of every jupyter_llm handler; subclasses stay thin and call the host."""

    auth_resource = AUTH_RESOURCE

    openai_errors = False
    """True for ``/v1`` handlers: errors in OpenAI's statuses and codes (``openai_error_body``)."""

    @property
    def llm(self) -> Any:
        """The ``JupyterLLM`` extension app (owner of the host, settings and thread pool)."""
        return self.settings["jupyter_llm"]

    async def host(self) -> Any:
        """The server's ``ModelHost``, created on first use (off the event loop)."""
        return await self.run_blocking(lambda: self.llm.host)

    @property
    def hung_up(self) -> threading.Event:
        """Set when the client goes away: one event for the whole request, so a hang-up that
        comes before the work starts is not lost; work in the thread pool polls it."""
        event = self.__dict__.get("_hung_up")
        if event is None:
            event = self._hung_up = threading.Event()
        return event

    def on_hang_up(self, fn: Callable[[], None] | None) -> None:
        """Run ``fn`` (thread-safe) in the pool when the client goes away; at once if it has."""
        self._on_cancel = fn
        if fn is not None and self.hung_up.is_set():
            self.llm.executor.submit(fn)

    async def run_blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking call in the extension's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.llm.executor, lambda: fn(*args, **kwargs))

    # -- bodies ----------------------------------------------------------------------------
    def json_body(self) -> Any:
        """The request body parsed as JSON (400 ``invalid_request`` when malformed)."""
        raw = self.request.body or b"{}"
        check_body_size(len(raw), self.llm.llm_settings)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InvalidRequest(f"The request body is not valid JSON: {e}. Send a JSON object.",
                                 details={"position": getattr(e, "pos", None)}) from None
        except RecursionError:
            raise InvalidRequest(f"The request body is nested more than {MAX_JSON_DEPTH} levels "
                                 "deep; send a flatter JSON document.") from None
        check_json_depth(data)
        return data

    def parse(self, model: type[Body]) -> Body:
        """Parse and validate the body as ``model``; errors name each field."""
        data = self.json_body()
        if not isinstance(data, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        try:
            return model.model_validate(data)
        except ValidationError as e:
            fields = [{"field": ".".join(str(p) for p in err["loc"]) or "(body)",
                       "message": err["msg"]} for err in e.errors()]
            summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
            raise InvalidRequest(f"Invalid request body — {summary}.",
                                 details={"fields": fields}) from None

    def identity(self) -> Any:
        """Who sends this request (an ``Identity``: a stable name; the role from a named token,
        else the host's policy tells it)."""
        from .identity import identity_of

        return identity_of(self.current_user)

    # -- authentication ----------------------------------------------------------------------
    def check_xsrf_cookie(self) -> None:
        """A request without a valid token is 401 "invalid or missing token" (Jupyter would
        answer a POST with "'_xsrf' argument missing"); a logged-in browser still needs XSRF."""
        if hasattr(self, "_jupyter_current_user") and not self._jupyter_current_user:
            raise Unauthorized(AUTH_MESSAGE)
        return super().check_xsrf_cookie()

    def get_login_url(self) -> str:
        """``@web.authenticated`` without a user: 401 in the JSON error shape, no redirect."""
        raise Unauthorized(AUTH_MESSAGE)

    # -- errors ----------------------------------------------------------------------------
    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The HTTP methods this handler implements (for ``Allow`` on a 405)."""
        return [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
                if getattr(cls, m.lower()) is not getattr(APIHandler, m.lower(), None)]

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """Our own errors are answered to the client: log one line, not an "Uncaught" traceback."""
        if isinstance(value, JupyterLLMError):
            level = logging.ERROR if value.status >= 500 else logging.DEBUG
            if isinstance(value, Unauthorized):
                level = logging.WARNING  # as Jupyter logs refused requests
            log.log(level, "%s %s: %s %s", self.request.method, self.request.path,
                    value.status, value.message)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is ``{"error": {"type", "message", "details"}}``; never a traceback."""
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else web.HTTPError(status_code)
        status, body, headers = (openai_error_body if self.openai_errors else error_body)(exc)
        if status >= 500 and not isinstance(exc, JupyterLLMError):
            log.error("Unexpected error in %s %s", self.request.method, self.request.path,
                      exc_info=exc_info)
        self.clear_header("Content-Type")
        self.set_status(status, reason=httputil.responses.get(status, "Client Closed Request"))
        for key, value in headers.items():
            self.set_header(key, value)
        if status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_json(self, data: Any, status: int = 200) -> None:
        """Finish with a JSON body."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    # -- generations -----------------------------------------------------------------------
    async def prime(self, gen: Any) -> None:
        """Wait (off the loop) for a generation's first piece, so an early error still gets
        its status code; a client that hangs up meanwhile cancels it. Its warnings go into the
        ``X-Jupyter-LLM-Warning`` header (and the server log), before any byte is sent."""
        self.on_hang_up(gen.cancel)
        await self.run_blocking(gen.prime)
        for warning in gen.warnings:
            log.warning("%s %s: %s", self.request.method, self.request.path, warning["message"])
        if gen.warnings:  # header values must be one line of latin-1
            text = " | ".join(w["message"] for w in gen.warnings)
            self.set_header("X-Jupyter-LLM-Warning",
                            text.encode("latin-1", "replace").decode("latin-1"))

    # -- streaming -------------------------------------------------------------------------
    def on_connection_close(self) -> None:
        """The client went away: stop whatever this request is producing."""
        self._cancel_stream()
        super().on_connection_close()

    def _cancel_stream(self) -> None:
        if not self.hung_up.is_set():
            self.hung_up.set()
            on_cancel = getattr(self, "_on_cancel", None)
            if on_cancel is not None:
                self.llm.executor.submit(on_cancel)

    def _log_stream_error(self, exc: BaseException) -> None:
        """Log an error that ends a stream once: a traceback for anything unexpected or 5xx."""
        where = f"{self.request.method} {self.request.path}"
        if isinstance(exc, JupyterLLMError) and exc.status < 500:
            log.debug("%s: stream ended with %s %s", where, exc.status, exc.message)
        else:
            log.error("Error inside the stream of %s: %s", where, exc,
                      exc_info=(type(exc), exc, exc.__traceback__))

    async def stream(self, produce: Callable[[threading.Event], Iterator[Any]] | CallbackStream[Any],
                     encode: Callable[[Any], bytes], content_type: str,
                     on_cancel: Callable[[], None] | None = None) -> bool:
        """Write each item of ``produce`` through ``encode``, coalescing ready items.

        ``produce`` is either ``produce(cancel)``, an iterator run in the thread pool, or a
        ``CallbackStream``, whose working thread hands its items straight to the event
        loop. When the client disconnects, ``cancel`` is set (and a ``CallbackStream``
        cancelled); ``produce`` must then stop (and cancel its Response) before its next
        item; ``on_cancel`` (thread-safe) runs at once in the pool.
        Returns False when the client went away.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = self.hung_up  # may be set already, while prime() waited

        def send(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def pump() -> None:
            assert not isinstance(produce, CallbackStream)
            try:
                for item in produce(cancel):
                    send(item)
                    if cancel.is_set():
                        break
            except BaseException as e:  # delivered to the client as the last item
                send(e)
            finally:
                send(STREAM_END)

        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        if isinstance(produce, CallbackStream):
            stream, extra = produce, on_cancel

            def stop() -> None:
                stream.cancel()
                if extra is not None:
                    extra()

            self.on_hang_up(stop)
            produce.start(send)
            future = None
        else:
            self.on_hang_up(on_cancel)
            future = loop.run_in_executor(self.llm.executor, pump)
        connected, ended = True, False
        try:
            while not ended:
                item = await queue.get()
                batch = [item]
                while item is not STREAM_END and not queue.empty():
                    item = queue.get_nowait()
                    batch.append(item)
                ended = batch[-1] is STREAM_END
                for failure in (i for i in batch if isinstance(i, BaseException)):
                    self._log_stream_error(failure)  # once, whoever produced it
                if connected and not cancel.is_set():
                    data = b"".join(encode(i) for i in batch if i is not STREAM_END)
                    try:
                        if data:
                            self.write(data)
                            await self.flush()
                    except StreamClosedError:
                        connected = False
                        self._cancel_stream()
        finally:
            if not ended:  # this coroutine was cancelled: stop the producer too
                self._cancel_stream()
            if future is not None:
                await future
        if connected and not cancel.is_set():
            self.finish()
        return connected and not cancel.is_set()


class NotFoundHandler(LLMHandler):
    """Any other path under ``llm/``: 404 in the JSON error shape."""

    def _missing(self) -> None:
        # the path goes in as an argument: tornado %-formats log_message with args, and a
        # path that is the format string itself would double its '%' (as in /a%40b/)
        raise web.HTTPError(404, "No route %s; the routes are listed in llm/api/openapi.json.",
                            self.request.path)

    @web.authenticated
    @authorized
    def get(self, *args: Any) -> None:
        """404."""
        self._missing()

    @web.authenticated
    @authorized
    def post(self, *args: Any) -> None:
        """404."""
        self._missing()

    @web.authenticated
    @authorized
    def delete(self, *args: Any) -> None:
        """404."""
        self._missing()
