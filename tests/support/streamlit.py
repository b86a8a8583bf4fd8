"""A real Streamlit server for a test: started, healthy before the test, stopped after."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.waiting import http_status


@contextmanager
def served(argv: Sequence[str], port: int, cwd: Path, log_path: Path,
           env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run ``argv`` (a Streamlit server on ``port``) and yield its URL once it is healthy."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=None if env is None else dict(env),
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while http_status(f"{url}/_stcore/health") != 200:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "streamlit did not become healthy"
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
