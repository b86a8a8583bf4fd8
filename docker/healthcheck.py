"""Compose healthcheck without curl: exit 0 when every URL answers 2xx within the timeout.

    python healthcheck.py http://127.0.0.1:8001/healthz [more URLs ...]

The services' ``/healthz`` answers 503 until they are ready, which counts as unhealthy here.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Sequence

TIMEOUT_SECONDS = 4.0


def healthy(url: str, timeout_s: float = TIMEOUT_SECONDS) -> bool:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    try:
        # S310: the scheme is checked above, so no file:// or custom scheme is opened.
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return 200 <= response.status < 300
    except OSError:  # refused, timed out, or an HTTP error status (HTTPError is an OSError)
        return False


def main(argv: Sequence[str] | None = None) -> int:
    urls = list(sys.argv[1:] if argv is None else argv)
    if not urls:
        print("usage: healthcheck.py URL [URL ...]", file=sys.stderr)
        return 2
    failing = [url for url in urls if not healthy(url)]
    for url in failing:
        print(f"unhealthy: {url}", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
