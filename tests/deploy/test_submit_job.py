"""docker/flink/submit_job.py against a stand-in for the JobManager's REST API and a stand-in
``flink`` command: it cancels a stale job, submits, reports health, and cancels on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.support import load_script
from tests.helpers import REPO

SUBMIT_JOB = REPO / "docker" / "flink" / "submit_job.py"


def load_submit_job() -> ModuleType:
    return load_script(SUBMIT_JOB)


submit_job = load_submit_job()


class FakeJobManager:
    """The three REST calls the submitter makes, over a mutable job list."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                with owner.lock:
                    if self.path == "/overview":
                        self._send(200, {"taskmanagers": 1, "slots-total": 2})
                    elif self.path == "/jobs/overview":
                        self._send(200, {"jobs": list(owner.jobs)})
                    else:
                        self._send(404, {"errors": ["not found"]})

            def do_PATCH(self) -> None:
                jid = self.path.split("/")[2].split("?")[0]
                with owner.lock:
                    owner.cancelled.append(jid)
                    for job in owner.jobs:
                        if job["jid"] == jid:
                            job["state"] = "CANCELED"
                self._send(202, {})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, jid: str, state: str = "RUNNING", name: str = "arb-detector",
            running: int = 5, total: int = 5) -> None:
        with self.lock:
            self.jobs.append({"jid": jid, "name": name, "state": state,
                              "tasks": {"total": total, "running": running}})


@pytest.fixture
def jobmanager() -> Iterator[FakeJobManager]:
    fake = FakeJobManager()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_healthcheck_needs_the_job_running_with_every_task(jobmanager: FakeJobManager) -> None:
    rest = submit_job.FlinkRest(jobmanager.url)
    assert submit_job.healthcheck(rest, "arb-detector") == 1  # no job yet
    jobmanager.add("old", state="CANCELED")
    jobmanager.add("other", name="someone-else")
    jobmanager.add("starting", running=2, total=5)
    assert submit_job.healthcheck(rest, "arb-detector") == 1
    jobmanager.add("good")
    assert submit_job.healthcheck(rest, "arb-detector") == 0
    assert submit_job.main(["--rest-url", jobmanager.url, "--check"]) == 0


def test_healthcheck_fails_when_the_jobmanager_is_down() -> None:
    rest = submit_job.FlinkRest("http://127.0.0.1:9")
    assert submit_job.healthcheck(rest, "arb-detector") == 1
    assert not rest.ready()


def test_cancel_jobs_only_touches_active_jobs_of_that_name(jobmanager: FakeJobManager) -> None:
    jobmanager.add("stale")
    jobmanager.add("restarting", state="RESTARTING")
    jobmanager.add("done", state="FINISHED")
    jobmanager.add("other", name="someone-else")
    rest = submit_job.FlinkRest(jobmanager.url)
    assert submit_job.cancel_jobs(rest, "arb-detector", wait_s=5) == ["stale", "restarting"]
    assert jobmanager.cancelled == ["stale", "restarting"]
    assert submit_job.active_jobs(rest, "arb-detector") == []


def test_flink_run_command() -> None:
    assert submit_job.flink_run_command("flink", "http://flink-jobmanager:8081") == [
        "flink", "run", "-Drest.address=flink-jobmanager", "-Drest.port=8081",
        "--python", "/app/flink/job.py",
    ]


def test_rest_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        submit_job.FlinkRest("file:///etc/passwd")


def fake_flink(tmp_path: Path, rest_url: str = "http://127.0.0.1:9") -> Path:
    """A ``flink`` that records its arguments, then runs like an attached client: until the job
    it submitted (named "submitted" here) is cancelled, then it fails as the real client does."""
    script = tmp_path / "flink"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, sys, time, urllib.request\n"
        f"pathlib.Path({str(tmp_path / 'argv.txt')!r}).write_text(' '.join(sys.argv[1:]))\n"
        "deadline = time.monotonic() + 60\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        f"        jobs = json.load(urllib.request.urlopen({rest_url + '/jobs/overview'!r}))\n"
        "    except OSError:\n"
        "        jobs = {'jobs': []}\n"
        "    if any(j['jid'] == 'submitted' and j['state'] == 'CANCELED' for j in jobs['jobs']):\n"
        "        sys.exit(1)\n"
        "    time.sleep(0.1)\n",
    )
    script.chmod(0o755)
    return script


def wait_for(predicate: Any, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_submits_then_cancels_on_sigterm(jobmanager: FakeJobManager, tmp_path: Path) -> None:
    jobmanager.add("left-over")  # an earlier submitter's job, with maybe stale configuration
    proc = subprocess.Popen(
        [sys.executable, str(SUBMIT_JOB), "--rest-url", jobmanager.url,
         "--flink-bin", str(fake_flink(tmp_path, jobmanager.url)), "--ready-wait-seconds", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ),
    )
    try:
        assert wait_for(lambda: (tmp_path / "argv.txt").exists()), "flink run was not started"
        assert jobmanager.cancelled == ["left-over"]
        assert (tmp_path / "argv.txt").read_text() == (
            f"run -Drest.address=127.0.0.1 -Drest.port={jobmanager.url.rsplit(':', 1)[1]} "
            "--python /app/flink/job.py")
        jobmanager.add("submitted")  # what the real `flink run` would have created
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output.decode()
    assert jobmanager.cancelled == ["left-over", "submitted"]


def test_exits_with_the_client_code_when_the_job_ends(
    jobmanager: FakeJobManager, tmp_path: Path,
) -> None:
    failing = tmp_path / "flink"
    failing.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3)\n")
    failing.chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(SUBMIT_JOB), "--rest-url", jobmanager.url,
         "--flink-bin", str(failing)],
        capture_output=True, timeout=30, check=False,
    )
    assert result.returncode == 3, result.stderr.decode()


def test_gives_up_when_the_jobmanager_never_answers(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SUBMIT_JOB), "--rest-url", "http://127.0.0.1:9",
         "--flink-bin", str(fake_flink(tmp_path)), "--ready-wait-seconds", "1"],
        capture_output=True, timeout=30, check=False,
    )
    assert result.returncode == 1
    assert b"not ready" in result.stderr
    assert not (tmp_path / "argv.txt").exists()
