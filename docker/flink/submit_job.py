"""Compose's job submitter: run the detection job on the Flink cluster, tied to this container.

On start it waits for the JobManager's REST API, cancels a job of the same name that an earlier
submitter left behind (its configuration may be stale), then runs ``flink run --python
/app/flink/job.py`` attached: the PyFlink client blocks while the job runs, so this container
lives exactly as long as the job. SIGTERM (``docker compose stop`` or ``down``) cancels the job
and exits 0. A job that fails for good ends ``flink run`` with an error, and the container's
restart policy submits it again. Either way the next job resumes from the last one's retained
checkpoint (``ARB_RESTORE_CHECKPOINT``), or failing that from the offsets it committed
(``ARB_STARTUP_MODE=group-offsets`` under compose).

``--check`` is the container's healthcheck: exit 0 while a job of that name is RUNNING with
every task running.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

#: The job's ``pipeline.name`` (flink/job.py, ``run``'s default); the tests check they agree.
JOB_NAME = "arb-detector"
JOB_SCRIPT = "/app/flink/job.py"
DEFAULT_REST_URL = "http://flink-jobmanager:8081"
#: Job states after which a job never runs again (Flink's JobStatus.isGloballyTerminalState).
TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED"})
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Job:
    """One row of the JobManager's ``/jobs/overview``."""

    jid: str
    name: str
    state: str
    tasks_total: int | None = None
    tasks_running: int | None = None

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL_STATES

    @property
    def healthy(self) -> bool:
        """RUNNING, and every task deployed and running (not waiting for a slot or restarting)."""
        if self.state != "RUNNING":
            return False
        return self.tasks_total is None or self.tasks_running == self.tasks_total

    @classmethod
    def from_overview(cls, row: dict[str, Any]) -> Job:
        tasks = row.get("tasks") or {}
        return cls(
            jid=str(row["jid"]),
            name=str(row.get("name", "")),
            state=str(row.get("state", "")),
            tasks_total=tasks.get("total"),
            tasks_running=tasks.get("running"),
        )


class FlinkRest:
    """The few calls of Flink's REST API this needs, over the standard library only."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {base_url}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str) -> Any:
        # S310: the scheme is checked in __init__, so no file:// or custom scheme is opened.
        request = urllib.request.Request(self.base_url + path, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
            body = response.read()
        return json.loads(body) if body.strip() else None

    def ready(self) -> bool:
        try:
            self._call("GET", "/overview")
        except (OSError, ValueError):
            return False
        return True

    def jobs(self) -> list[Job]:
        return [Job.from_overview(row) for row in self._call("GET", "/jobs/overview")["jobs"]]

    def cancel(self, jid: str) -> None:
        self._call("PATCH", f"/jobs/{urllib.parse.quote(jid)}?mode=cancel")


def active_jobs(rest: FlinkRest, name: str) -> list[Job]:
    return [job for job in rest.jobs() if job.name == name and job.active]


def cancel_jobs(rest: FlinkRest, name: str, wait_s: float = 60.0) -> list[str]:
    """Cancel every active job called ``name``; wait until they are gone. Returns their ids."""
    ids = [job.jid for job in active_jobs(rest, name)]
    for jid in ids:
        log(f"cancelling job {jid} ({name})")
        rest.cancel(jid)
    deadline = time.monotonic() + wait_s
    while ids and time.monotonic() < deadline:
        if not {job.jid for job in active_jobs(rest, name)} & set(ids):
            break
        time.sleep(POLL_SECONDS)
    return ids


def wait_until_ready(rest: FlinkRest, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while not rest.ready():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def flink_run_command(flink_bin: str, rest_url: str, script: str = JOB_SCRIPT) -> list[str]:
    """``flink run`` for the PyFlink script against the JobManager at ``rest_url``."""
    parsed = urllib.parse.urlsplit(rest_url)
    return [
        flink_bin, "run",
        f"-Drest.address={parsed.hostname}", f"-Drest.port={parsed.port or 8081}",
        "--python", script,
    ]


def healthcheck(rest: FlinkRest, name: str) -> int:
    try:
        jobs = [job for job in rest.jobs() if job.name == name]
    except (OSError, ValueError, KeyError) as exc:
        print(f"unhealthy: JobManager REST API: {exc}", file=sys.stderr)
        return 1
    if any(job.healthy for job in jobs):
        return 0
    states = ", ".join(f"{job.jid}={job.state}" for job in jobs) or "none"
    print(f"unhealthy: no running job named {name} (jobs: {states})", file=sys.stderr)
    return 1


def log(message: str) -> None:
    print(f"submit-job: {message}", file=sys.stderr, flush=True)


def run(rest: FlinkRest, command: list[str], name: str, ready_wait_s: float) -> int:
    """Submit and supervise; 0 after a requested stop, else ``flink run``'s exit code."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if not wait_until_ready(rest, ready_wait_s):
        log(f"JobManager REST API at {rest.base_url} not ready after {ready_wait_s:g} s")
        return 1
    cancel_jobs(rest, name)
    if stop.is_set():
        return 0
    log(f"submitting: {' '.join(command)}")
    proc = subprocess.Popen(command)  # noqa: S603 - fixed argv built by flink_run_command
    while proc.poll() is None and not stop.is_set():
        time.sleep(POLL_SECONDS)
    if proc.returncode is not None:
        log(f"flink run exited with code {proc.returncode}")
        return proc.returncode
    log("stopping: cancelling the job")
    try:
        cancel_jobs(rest, name, wait_s=20.0)
    except (OSError, ValueError, KeyError) as exc:
        log(f"could not cancel the job: {exc}")
    try:
        proc.wait(timeout=20.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest-url", default=DEFAULT_REST_URL,
                        help=f"JobManager REST API (default {DEFAULT_REST_URL})")
    parser.add_argument("--job-name", default=JOB_NAME, help=f"job name (default {JOB_NAME})")
    parser.add_argument("--script", default=JOB_SCRIPT, help=f"PyFlink job (default {JOB_SCRIPT})")
    parser.add_argument("--flink-bin", default="flink", help="the flink command (default on PATH)")
    parser.add_argument("--ready-wait-seconds", type=float, default=300.0,
                        help="how long to wait for the REST API (default 300)")
    parser.add_argument("--check", action="store_true",
                        help="healthcheck: exit 0 while the job is running")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rest = FlinkRest(args.rest_url)
    if args.check:
        return healthcheck(rest, args.job_name)
    command = flink_run_command(args.flink_bin, args.rest_url, args.script)
    return run(rest, command, args.job_name, args.ready_wait_seconds)


if __name__ == "__main__":
    sys.exit(main())
