"""``arb``: start the whole pipeline locally, or any one piece of it.

``arb start`` runs the local broker in this process and every other piece as a child process
with its output prefixed by its name; Ctrl-C, or any child failing, stops them all. It imports
no service: children are started by module name, so each service stays independent. It checks
every setting and every port it will bind before it starts anything.

``arb`` works from any directory, installed or in a checkout: ``.env`` and ``var/`` are the
working directory's, and the files that are not Python are found by services/common/paths.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from services.common.alertmanager import local_alertmanager
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
from services.common.exceptions import ArbError, ConfigError
from services.common.logging import configure_logging, log_format
from services.common.paths import find, recordings_dir, var_dir
from services.common.ports import holder, is_free

COLOURS = {"broker": 90, "flink": 35, "producer": 36, "alerter": 33, "dashboard": 32,
           "prometheus": 34, "alertmanager": 94}
#: Subcommands whose arguments, --help included, are the service's own.
PASSTHROUGH = {"producer": "services.producer", "report": "services.report"}
PROMETHEUS_CONFIG = "prometheus/prometheus.yml"

log = structlog.get_logger("arb")


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

    def start(self, tty: bool, json_lines: bool = False) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - argv is built here, not from input
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        prefix = f"{self.name:<10}|"
        if tty:
            prefix = f"\033[{COLOURS.get(self.name, 0)}m{prefix}\033[0m"
        self.pump = threading.Thread(target=self._pump, args=(prefix, json_lines), daemon=True)
        self.pump.start()

    def _pump(self, prefix: str, json_lines: bool) -> None:
        assert self.proc is not None and self.proc.stdout is not None  # noqa: S101
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not json_lines:
                sys.stdout.write(f"{prefix} {line}\n")
            elif line.strip():
                sys.stdout.write(json_line(self.name, line) + "\n")
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


def json_line(child: str, line: str) -> str:
    """One line of a child's output as one JSON object, in the JSON mode: its own (given the
    child's name as ``service`` if it has none), or, a line some library printed, wrapped."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        record = {"event": "child_output", "level": "info", "line": line, "timestamp": now}
    elif "service" in record:
        return line
    return json.dumps({**record, "service": child})


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
    scraped = {model.model_fields[name].default: getattr(model.from_env(env), name)
               for model, name in ports}
    scraped[DetectionSettings.from_env({}).wrapper_port] = (
        DetectionSettings.from_env(env).wrapper_port)
    return scraped


def local_prometheus_config(env: Mapping[str, str]) -> Path:
    """prometheus/prometheus.yml with its targets moved to the ports this run uses, written
    under var/ (with the rule files referenced by absolute path)."""
    source = find(PROMETHEUS_CONFIG)
    if source is None:
        raise ArbError(f"{PROMETHEUS_CONFIG} is in neither the working directory nor the "
                       "checkout: use --no-prometheus")
    text = source.read_text()
    for default, port in scrape_ports(env).items():
        text = text.replace(f'"127.0.0.1:{default}"', f'"127.0.0.1:{port}"')
    text = text.replace("  - rules/*.yml", f"  - {source.parent / 'rules'}/*.yml")
    out = var_dir() / "prometheus.yml"
    out.write_text(text)
    return out


def prometheus_argv(env: dict[str, str], json_logs: bool = False) -> list[str] | None:
    """Prometheus on this run's ports, or None when it is not installed or not configured."""
    binary = shutil.which("prometheus")
    if binary is None or find(PROMETHEUS_CONFIG) is None:
        return None
    port = LocalRunSettings.from_env(env).prometheus_port
    return [binary, f"--config.file={local_prometheus_config(env)}",
            f"--storage.tsdb.path={var_dir() / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
            f"--log.format={'json' if json_logs else 'logfmt'}"]


def _broker_port(kafka: KafkaSettings) -> tuple[str, int]:
    first = kafka.bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    if host not in {"127.0.0.1", "localhost", "0.0.0.0"}:  # noqa: S104
        raise ArbError(f"KAFKA_BOOTSTRAP_SERVERS={first} is not local: use --no-broker to use "
                       "an existing broker")
    return "127.0.0.1", int(port)


@dataclass(frozen=True)
class PlannedPort:
    """A port ``arb start`` will bind, the setting that moves it, and what else would do."""

    port: int
    setting: str
    instead: str = ""


def planned_ports(args: argparse.Namespace, env: Mapping[str, str],
                  prometheus: bool) -> list[PlannedPort]:
    """Every port this run binds (``0``, a free port picked at start, is none)."""
    planned = []
    if not args.no_broker:
        planned.append(PlannedPort(_broker_port(KafkaSettings.from_env(env))[1],
                                   "KAFKA_BOOTSTRAP_SERVERS", ", or --no-broker to use it"))
    fields = [(ProducerSettings, "metrics_port"), (AlerterSettings, "metrics_port"),
              (DashboardSettings, "metrics_port"), (DetectionSettings, "metrics_port"),
              (DashboardSettings, "port")]
    if prometheus:
        fields.append((LocalRunSettings, "prometheus_port"))
    for model, name in fields:
        instead = ", or --no-prometheus" if name == "prometheus_port" else ""
        planned.append(PlannedPort(getattr(model.from_env(env), name),
                                   model.model_fields[name].alias or name, instead))
    planned.append(PlannedPort(DetectionSettings.from_env(env).wrapper_port,
                               "ARB_FLINK_WRAPPER_METRICS_PORT"))
    return [p for p in planned if p.port]


def check_ports(planned: Sequence[PlannedPort]) -> None:
    """Raise ArbError naming the first port that is shared, or taken and by whom."""
    by_port: dict[int, str] = {}
    for p in planned:
        if p.port in by_port:
            raise ArbError(f"{by_port[p.port]} and {p.setting} are both {p.port}: give each "
                           "its own port")
        by_port[p.port] = p.setting
    for p in planned:
        if not is_free(p.port):
            raise ArbError(f"port {p.port} ({p.setting}) is taken by {holder(p.port)}: stop "
                           f"it, or set {p.setting} to a free port{p.instead}")


def child_env(json_logs: bool, tty: bool) -> dict[str, str]:
    """The children's environment: one log format for all, decided here by this output."""
    env = dict(os.environ)
    # The embedded broker starts empty, so the job may as well read everything it holds.
    env.setdefault("ARB_STARTUP_MODE", "earliest-offset")
    env["LOG_FORMAT"] = "json" if json_logs else "console"
    if tty and not json_logs and not env.get("NO_COLOR"):
        env.setdefault("FORCE_COLOR", "1")
    return with_recordings(env)


def with_recordings(env: dict[str, str]) -> dict[str, str]:
    """``env`` with ARB_FIXTURES_DIR naming the recordings found (services/common/paths.py),
    so a replay finds them from any directory; an invalid setting is left to the child."""
    with contextlib.suppress(ConfigError):
        recordings = recordings_dir(ProducerSettings.from_env(env).fixtures_dir)
        if recordings is not None:
            env["ARB_FIXTURES_DIR"] = str(recordings)
    return env


def start(args: argparse.Namespace) -> int:
    tty = sys.stdout.isatty()
    json_logs = log_format(sys.stdout) == "json"
    env = child_env(json_logs, tty)
    kafka = KafkaSettings.from_env(env)
    for model in (DetectionSettings, ProducerSettings, AlerterSettings, DashboardSettings,
                  LocalRunSettings):
        model.from_env(env)  # every setting checked before anything starts
    if args.replay and "ARB_FIXTURES_DIR" not in env:
        raise ArbError("no recordings to replay: set ARB_FIXTURES_DIR (looked for "
                       "../shared/fixtures/exchanges and data/recordings)")
    with_prometheus = (not args.no_prometheus and shutil.which("prometheus") is not None
                       and find(PROMETHEUS_CONFIG) is not None)
    check_ports(planned_ports(args, env, prometheus=with_prometheus))
    var_dir().mkdir(exist_ok=True)
    broker = None
    if not args.no_broker:
        # The embedded broker starts empty: checkpoints of an earlier run point at offsets of
        # topics that no longer exist, so the job starts fresh.
        shutil.rmtree(DetectionSettings.from_env(env).checkpoint_dir, ignore_errors=True)
        host, port = _broker_port(kafka)
        broker = LocalBroker(port=port, host=host, topics=kafka.topics,
                             partitions=kafka.partitions, log_file=var_dir() / "broker.log").start()
    children = [
        Child("flink", _python("-m", "flink.job"), env),
        Child("alerter", _python("-m", "services.alerter"), env),
        Child("dashboard", dashboard_argv(), env),
        Child("producer", producer_argv(args), env, may_finish=args.replay and args.no_loop),
    ]
    prom = prometheus_argv(env, json_logs) if with_prometheus else None
    if prom:
        # Optional: if it cannot run the pipeline goes on without it.
        children.append(Child("prometheus", prom, env, optional=True))
        # Beside it when installed: Alertmanager routes its firing alerts to Discord.
        alertmanager = local_alertmanager(env, var_dir(), json_logs)
        if alertmanager:
            children.append(Child("alertmanager", alertmanager, env, optional=True))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # Ctrl-C stops everything even when arb was started with SIGINT ignored (a background job
    # of a non-interactive shell, nohup): Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    exit_code = 0
    try:
        for child in children:
            child.start(tty, json_lines=json_logs)
        port = DashboardSettings.from_env(env).port
        skipped = "" if prom or args.no_prometheus else " (prometheus not installed: skipped)"
        if not prom and shutil.which("prometheus") and not args.no_prometheus:
            skipped = f" (no {PROMETHEUS_CONFIG} here: prometheus skipped)"
        log.info(f"running {', '.join(c.name for c in children)}{skipped}; alert history at "
                 f"http://localhost:{port} - Ctrl-C stops everything")
        while not stopping.is_set():
            for child in children:
                code = child.proc.poll() if child.proc else None
                if code is None or (code == 0 and child.may_finish):
                    continue
                if child.optional:
                    if not child.reported:
                        log.warning(f"{child.name} exited with code {code}; carrying on "
                                    "without it")
                        child.reported = True
                    continue
                log.error(f"{child.name} exited with code {code}; stopping everything")
                exit_code = code if code and code > 0 else 1
                stopping.set()
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        stop_all(children)
        if broker:
            broker.stop()
    return exit_code


def run_broker() -> int:
    kafka = KafkaSettings.from_env()
    host, port = _broker_port(kafka)
    check_ports([PlannedPort(port, "KAFKA_BOOTSTRAP_SERVERS")])
    broker = LocalBroker(port=port, host=host, topics=kafka.topics,
                         partitions=kafka.partitions).start()
    log.info(f"broker on {broker.bootstrap_servers} (memory storage); Ctrl-C stops it")
    try:
        return broker.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def _exec(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` in the working directory (paths in its arguments are the caller's)."""
    return subprocess.call(argv, env=env)  # noqa: S603


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """arb's parser, and each subcommand's (for an error shown with that one's usage)."""
    parser = argparse.ArgumentParser(prog="arb", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    subs = {
        "start": sub.add_parser(
            "start", help="broker, Flink job, producer, alerter, dashboard (and Prometheus)",
            allow_abbrev=False),
        "broker": sub.add_parser("broker", help="the local Tansu broker with the topics created"),
        "flink": sub.add_parser("flink", help="the detection job in a local Flink MiniCluster"),
        "producer": sub.add_parser(
            "producer", add_help=False,
            help="exchange producer (arguments go to it: live | replay | record ...; "
                 "arb producer --help for its own)"),
        "alerter": sub.add_parser("alerter", help="Discord alerter and history recorder"),
        "dashboard": sub.add_parser("dashboard", help="the Streamlit alert history"),
        "report": sub.add_parser(
            "report", add_help=False,
            help="replay recorded data through the pipeline at maximum speed into an HTML "
                 "report and a CSV of episodes (arguments go to it: arb report --help)"),
    }
    st = subs["start"]
    st.add_argument("--replay", action="store_true",
                    help="replay the recorded exchange messages instead of live WebSockets")
    st.add_argument("--speed", default="1", help="replay speed: 1, N or max (default 1)")
    st.add_argument("--no-loop", action="store_true", help="play the recording once")
    st.add_argument("--shock", action="append", default=[], metavar="SPEC",
                    help="inject a price shock, e.g. binance:BTC-USD:+150@10:2 (repeatable)")
    st.add_argument("--no-broker", action="store_true",
                    help="use the broker at KAFKA_BOOTSTRAP_SERVERS instead of starting one")
    st.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    return parser, subs


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Strict: an unknown option or argument is an error with the subcommand's usage (exit 2),
    except after a pass-through subcommand, where everything (``--help`` too) is the
    service's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return argparse.Namespace(command=argv[0]), argv[1:]
    parser, subs = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        subs[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args, []


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = parse_args(argv)
    load_dotenv()
    # arb start's children write to its stdout: its own lines go there too, one stream.
    configure_logging("arb", stream=sys.stdout if args.command in {"start", "broker"} else None)
    try:
        if args.command == "start":
            return start(args)
        if args.command == "broker":
            return run_broker()
        if args.command == "flink":
            return _exec(_python("-m", "flink.job"))
        if args.command in PASSTHROUGH:
            return _exec(_python("-m", PASSTHROUGH[args.command], *rest),
                         with_recordings(dict(os.environ)))
        if args.command == "alerter":
            return _exec(_python("-m", "services.alerter"))
        return _exec(dashboard_argv())
    except ArbError as exc:
        log.error(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
