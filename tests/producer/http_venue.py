"""A local HTTP server (127.0.0.1, own thread) standing in for a venue's REST snapshot endpoint:
each GET of a path answers the next body queued for it (the last one again when the queue is
down to one), or a status code, and every request is written down."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class RestVenue:
    """``answers[path]``: bodies (str) or status codes (int) answered in turn."""

    def __init__(self, answers: dict[str, list[str | int]]) -> None:
        self.answers = {path: list(queue) for path, queue in answers.items()}
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        venue = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = venue._next(self.path)
                if isinstance(answer, int):
                    self.send_response(answer)
                    self.end_headers()
                    return
                body = answer.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _next(self, path: str) -> str | int:
        with self._lock:
            self.requests.append(path)
            queue = self.answers.get(path)
            if not queue:
                return 404
            return queue.pop(0) if len(queue) > 1 else queue[0]
