"""``arb``: start the whole pipeline locally, or any one piece of it.

``arb start`` runs the local broker in this process and every other piece as a child process
with its output prefixed by its name; Ctrl-C, or any child failing, stops them all. It imports
no service: children are started by module name, so each service stays independent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.common.broker import LocalBroker
from services.common.config import (
    AlerterSettings,
    DashboardSettings,
    DetectionSettings,
    KafkaSettings,
    LocalRunSettings,
    ProducerSettings,
    load_dotenv,
)
from services.common.exceptions import ArbError

REPO = Path(__file__).resolve().parent.parent
VAR = REPO / "var"
COLOURS = {"broker": 90, "flink": 35, "producer": 36, "alerter": 33, "dashboard": 32,
           "prometheus": 34}


@dataclass
class Child:
    """One supervised process and the thread that prefixes its output."""

    name: str
    argv: list[str]
    env: dict[str, str]
    may_finish: bool = False  # a finite replay ends on its own; that is not a failure
    optional: bool = False  # its exit, whatever the code, stops nothing else
    reported: bool = False
    proc: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = field(default=None, repr=False)

    def start(self, tty: bool) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - argv is built here, not from input
            self.argv, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        prefix = f"{self.name:<10}|"
        if tty:
            prefix = f"\033[{COLOURS.get(self.name, 0)}m{prefix}\033[0m"
        self.pump = threading.Thread(target=self._pump, args=(prefix,), daemon=True)
        self.pump.start()

    def _pump(self, prefix: str) -> None:
        assert self.proc is not None and self.proc.stdout is not None  # noqa: S101
        for line in iter(self.proc.stdout.readline, b""):
            sys.stdout.write(f"{prefix} {line.decode('utf-8', 'replace').rstrip()}\n")
            sys.stdout.flush()

    def terminate(self) -> None:
        """SIGTERM to the child itself, not its group: PyFlink's Java gateway must outlive the
        Python driver's shutdown, and exits by itself when the driver has gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic), then kill what is left of the process group."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # anything the child left behind
            os.killpg(self.proc.pid, signal.SIGKILL)


def stop_all(children: list[Child], grace_s: float = 10.0) -> None:
    """Producer first (no new records), then everything else at once; the broker goes last."""
    for group in ([c for c in children if c.name == "producer"],
                  [c for c in children if c.name != "producer"]):
        for child in group:
            child.terminate()
        deadline = time.monotonic() + grace_s
        for child in group:
            child.reap(deadline)


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def producer_argv(args: argparse.Namespace) -> list[str]:
    argv = _python("-m", "services.producer", "replay" if args.replay else "live")
    if args.replay:
        argv += ["--speed", args.speed]
        if not args.no_loop:
            argv.append("--loop")
        for shock in args.shock:
            argv += ["--shock", shock]
    return argv


def dashboard_argv() -> list[str]:
    """The Streamlit server through its own entry point, so /metrics and the shared Kafka
    reader are up before the first browser connects."""
    return _python("-m", "services.dashboard")


def scrape_ports(env: Mapping[str, str]) -> dict[int, int]:
    """prometheus/prometheus.yml's targets (each setting's default port) -> this run's ports."""
    ports = [(ProducerSettings, "metrics_port"), (AlerterSettings, "metrics_port"),
             (DashboardSettings, "metrics_port"), (DetectionSettings, "metrics_port"),
             (LocalRunSettings, "prometheus_port")]
    return {model.model_fields[name].default: getattr(model.from_env(env), name)
            for model, name in ports}


def local_prometheus_config(env: Mapping[str, str]) -> Path:
    """prometheus/prometheus.yml with its targets moved to the ports this run uses, written
    under var/ (with the rule files referenced by absolute path)."""
    text = (REPO / "prometheus" / "prometheus.yml").read_text()
    for default, port in scrape_ports(env).items():
        text = text.replace(f'"127.0.0.1:{default}"', f'"127.0.0.1:{port}"')
    text = text.replace("  - rules/*.yml", f"  - {REPO / 'prometheus' / 'rules'}/*.yml")
    out = VAR / "prometheus.yml"
    out.write_text(text)
    return out


def prometheus_argv(env: dict[str, str]) -> list[str] | None:
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    port = LocalRunSettings.from_env(env).prometheus_port
    return [binary, f"--config.file={local_prometheus_config(env)}",
            f"--storage.tsdb.path={VAR / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]


def _broker_port(kafka: KafkaSettings) -> tuple[str, int]:
    first = kafka.bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    if host not in {"127.0.0.1", "localhost", "0.0.0.0"}:  # noqa: S104
        raise ArbError(f"KAFKA_BOOTSTRAP_SERVERS={first} is not local: use --no-broker to use "
                       "an existing broker")
    return "127.0.0.1", int(port)


def start(args: argparse.Namespace) -> int:
    kafka = KafkaSettings.from_env()
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    # The embedded broker starts empty, so the job may as well read everything it holds.
    env.setdefault("ARB_STARTUP_MODE", "earliest-offset")
    tty = sys.stdout.isatty()
    broker = None
    if not args.no_broker:
        # The embedded broker starts empty: checkpoints of an earlier run point at offsets of
        # topics that no longer exist, so the job starts fresh.
        shutil.rmtree(DetectionSettings.from_env().checkpoint_dir, ignore_errors=True)
        host, port = _broker_port(kafka)
        broker = LocalBroker(port=port, host=host, topics=kafka.topics,
                             partitions=kafka.partitions, log_file=VAR / "broker.log").start()
    children = [
        Child("flink", _python("-m", "flink.job"), env),
        Child("alerter", _python("-m", "services.alerter"), env),
        Child("dashboard", dashboard_argv(), env),
        Child("producer", producer_argv(args), env, may_finish=args.replay and args.no_loop),
    ]
    prom = None if args.no_prometheus else prometheus_argv(env)
    if prom:
        # Optional: if it cannot run (say, its port is taken) the pipeline goes on without it.
        children.append(Child("prometheus", prom, env, optional=True))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    exit_code = 0
    try:
        for child in children:
            child.start(tty)
        port = DashboardSettings.from_env().port
        print(f"arb: running {', '.join(c.name for c in children)}"
              f"{'' if prom else ' (prometheus not installed: skipped)'}; alert history at "
              f"http://localhost:{port} - Ctrl-C stops everything", flush=True)
        while not stopping.is_set():
            for child in children:
                code = child.proc.poll() if child.proc else None
                if code is None or (code == 0 and child.may_finish):
                    continue
                if child.optional:
                    if not child.reported:
                        print(f"arb: {child.name} exited with code {code}; carrying on "
                              "without it", flush=True)
                        child.reported = True
                    continue
                print(f"arb: {child.name} exited with code {code}; stopping everything",
                      flush=True)
                exit_code = code if code and code > 0 else 1
                stopping.set()
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("arb: stopping", flush=True)
    finally:
        stop_all(children)
        if broker:
            broker.stop()
    return exit_code


def run_broker() -> int:
    kafka = KafkaSettings.from_env()
    host, port = _broker_port(kafka)
    broker = LocalBroker(port=port, host=host, topics=kafka.topics,
                         partitions=kafka.partitions).start()
    print(f"arb: broker on {broker.bootstrap_servers} (memory storage); Ctrl-C stops it",
          flush=True)
    try:
        return broker.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def _exec(argv: list[str]) -> int:
    return subprocess.call(argv, cwd=REPO)  # noqa: S603


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="arb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser(
        "start", help="broker, Flink job, producer, alerter, dashboard (and Prometheus)",
    )
    st.add_argument("--replay", action="store_true",
                    help="replay the recorded exchange messages instead of live WebSockets")
    st.add_argument("--speed", default="1", help="replay speed: 1, N or max (default 1)")
    st.add_argument("--no-loop", action="store_true", help="play the recording once")
    st.add_argument("--shock", action="append", default=[], metavar="SPEC",
                    help="inject a price shock, e.g. binance:BTC-USD:+150@10:2 (repeatable)")
    st.add_argument("--no-broker", action="store_true",
                    help="use the broker at KAFKA_BOOTSTRAP_SERVERS instead of starting one")
    st.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    sub.add_parser("broker", help="the local Tansu broker with the topics created")
    sub.add_parser("flink", help="the detection job in a local Flink MiniCluster")
    sub.add_parser("producer", help="exchange producer (arguments go to it: live | replay ...)")
    sub.add_parser("alerter", help="Discord alerter and history recorder")
    sub.add_parser("dashboard", help="the Streamlit alert history")
    sub.add_parser("report", help="replay recorded data through the pipeline at maximum speed "
                                  "into an HTML report and a CSV of episodes (arguments go to "
                                  "it: --fixtures-dir DIR --out DIR --shock SPEC --demo)")
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    caller_dir = Path.cwd()
    os.chdir(REPO)
    load_dotenv(REPO / ".env")
    args, rest = parse_args(argv)
    try:
        if args.command == "start":
            return start(args)
        if args.command == "broker":
            return run_broker()
        if args.command == "flink":
            return _exec(_python("-m", "flink.job"))
        if args.command == "producer":
            return _exec(_python("-m", "services.producer", *rest))
        if args.command == "alerter":
            return _exec(_python("-m", "services.alerter"))
        if args.command == "report":  # paths in its arguments are the caller's
            return subprocess.call(_python("-m", "services.report", *rest),  # noqa: S603
                                   cwd=caller_dir)
        return _exec(dashboard_argv())
    except ArbError as exc:
        print(f"arb: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
