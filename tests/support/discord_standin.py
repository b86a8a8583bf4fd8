"""A real local HTTP server standing in for a Discord webhook.

It records every POSTed JSON payload and answers from a script (429 with Retry-After, 500, a
slow answer, ...), then with ``default`` once the script is used up. Tests talk to it over real
sockets with real ``requests``, so retries, timeouts and headers are exercised end to end::

    with DiscordStandIn([Reply.rate_limited(0.2), Reply(500)]) as discord:
        post_to(discord.url)
        discord.wait_for(3)
        assert discord.statuses == [429, 500, 204]
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

#: The path shape of a real webhook: /api/webhooks/<id>/<token>.
WEBHOOK_PATH = "/api/webhooks/123456789012345678/stand-in-secret-token"


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``delay_s`` holds it back (longer than the client timeout = timeout);
    ``drop`` closes the connection instead of answering (the status is then what the stand-in
    counts the message as: 204 = posted, the answer lost on the way)."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON-serialisable; None = empty body
    delay_s: float = 0.0
    drop: bool = False

    @classmethod
    def rate_limited(cls, retry_after_s: float, *, in_header: bool = True,
                     in_body: bool = True) -> Reply:
        """Discord's 429: Retry-After header (seconds) and/or JSON ``retry_after`` (seconds)."""
        headers = {"Retry-After": f"{retry_after_s:g}"} if in_header else {}
        body = ({"message": "You are being rate limited.", "retry_after": retry_after_s,
                 "global": False} if in_body else None)
        return cls(status=429, headers=headers, body=body)

    @classmethod
    def global_rate_limited(cls, retry_after_s: float, *, in_header: bool = True,
                            in_body: bool = True) -> Reply:
        """Discord's global limit: ``"global": true`` in the body and/or X-RateLimit-Global."""
        headers = ({"Retry-After": f"{retry_after_s:g}", "X-RateLimit-Global": "true",
                    "X-RateLimit-Scope": "global"} if in_header else {})
        body = ({"message": "You are being rate limited.", "retry_after": retry_after_s,
                 "global": True} if in_body else None)
        return cls(status=429, headers=headers, body=body)

    @classmethod
    def rate_limited_without_wait(cls) -> Reply:
        """A 429 naming no wait at all (no header, no ``retry_after``): a proxy's answer."""
        return cls(status=429, body={"message": "Too many requests"})

    @classmethod
    def slow(cls, delay_s: float, status: int = 204) -> Reply:
        """Answered late; a slow 2xx past the client's timeout is a message posted that the
        client cannot know about."""
        return cls(status=status, delay_s=delay_s)

    @classmethod
    def dropped(cls, *, posted: bool = True) -> Reply:
        """The connection closes without an answer after the request was read; ``posted``
        says whether Discord had posted it (counted in :attr:`DiscordStandIn.accepted`)."""
        return cls(status=204 if posted else 503, drop=True)

    @classmethod
    def hang(cls, delay_s: float) -> Reply:
        """A request that times out and was not processed: held ``delay_s``, then answered 504
        (what an edge proxy says when the service behind it never answered). A slow *2xx*
        would model a message Discord posted although the client gave up waiting: then a
        retry posts it twice, the one case no webhook client can rule out."""
        return cls(status=504, delay_s=delay_s)


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST as the stand-in saw it; ``payload`` is None when the body was not JSON."""

    path: str
    headers: dict[str, str]
    payload: Any
    status: int
    monotonic_s: float


class DiscordStandIn:
    """Context manager serving on 127.0.0.1 on a free port; every accessor is thread-safe."""

    def __init__(self, script: Iterable[Reply] = (), default: Reply | None = None,
                 on_request: Callable[[ReceivedRequest], None] | None = None) -> None:
        #: Run on the server thread for each request, after it is recorded and before the
        #: reply (e.g. to kill the client while its request is in flight).
        self.on_request = on_request
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._script: list[Reply] = list(script)
        self._default = default or Reply(204)
        self._requests: list[ReceivedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="discord-standin", daemon=True,
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> DiscordStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DiscordStandIn:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- what tests use ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    @property
    def received(self) -> list[Any]:
        """Every POSTed JSON payload so far, in arrival order (a copy)."""
        with self._lock:
            return [r.payload for r in self._requests]

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def statuses(self) -> list[int]:
        """The status answered to each request (a slow one counts even if the client left)."""
        with self._lock:
            return [r.status for r in self._requests]

    @property
    def accepted(self) -> list[Any]:
        """Payloads answered with a 2xx: the messages Discord would show."""
        with self._lock:
            return [r.payload for r in self._requests if 200 <= r.status < 300]

    @property
    def accepted_alert_ids(self) -> list[str]:
        """The alert id of each accepted message, read back from its embed footer."""
        return [
            p["embeds"][0]["footer"]["text"].removeprefix("alert ") for p in self.accepted
        ]

    @property
    def accepted_footers(self) -> list[str]:
        """Each accepted message's embed footer: "alert <id>", "episode <id> opened", ..."""
        return [p["embeds"][0]["footer"]["text"] for p in self.accepted]

    def script(self, *replies: Reply) -> None:
        """Queue more answers after the ones not yet used."""
        with self._lock:
            self._script.extend(replies)

    def set_default(self, reply: Reply) -> None:
        with self._lock:
            self._default = reply

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Any]:
        """Block until at least ``count`` requests arrived; payloads so far, or TimeoutError."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"stand-in got {len(self._requests)} requests, expected {count}",
                    )
                self._arrived.wait(left)
            return [r.payload for r in self._requests]

    # -- server side -------------------------------------------------------------------------
    def _next_reply(self, path: str, headers: dict[str, str], payload: Any,
                    ) -> tuple[Reply, ReceivedRequest]:
        with self._arrived:
            reply = self._script.pop(0) if self._script else self._default
            request = ReceivedRequest(path=path, headers=headers, payload=payload,
                                      status=reply.status, monotonic_s=time.monotonic())
            self._requests.append(request)
            self._arrived.notify_all()
            return reply, request

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                reply, request = outer._next_reply(self.path, dict(self.headers.items()),
                                                   payload)
                if outer.on_request is not None:
                    outer.on_request(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = b"" if reply.body is None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if body:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if body:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: exactly what a slow reply tests

            def log_message(self, *args: object) -> None:
                pass

        return _Handler
