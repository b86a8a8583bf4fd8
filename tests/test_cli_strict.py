"""``arb`` refuses what it does not understand, passes a service's own options (``--help``
too) to it, and ``arb start`` checks every port it will bind before it starts anything,
naming the port, its setting and the process holding it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import cli
from services.common.broker import LocalBroker, free_port
from services.common.ports import holder, is_free, listening_inodes
from tests.helpers import REPO, start_env
from tests.test_cli import children_of


def arb(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO,
        timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port this test process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# --- strict parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["start", "--replya"], ["alerter", "--bogus"],
                                  ["dashboard", "extra"], ["start", "--repl"]])
def test_an_unknown_option_is_an_error_with_usage(argv: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: arb {argv[0]}" in err
    assert f"unrecognized arguments: {argv[1]}" in err


def test_pass_through_subcommands_keep_their_arguments() -> None:
    args, rest = cli.parse_args(["producer", "replay", "--speed", "max", "--help"])
    assert args.command == "producer"
    assert rest == ["replay", "--speed", "max", "--help"]
    args, rest = cli.parse_args(["start", "--replay", "--no-loop"])
    assert (args.replay, args.no_loop, rest) == (True, True, [])


@pytest.mark.parametrize(("argv", "own_option"), [
    (["producer", "replay", "--help"], "--fixtures-dir"),
    (["producer", "--help"], "--max-file-mb"),
    (["report", "--help"], "--out"),
])
def test_help_of_a_service_is_the_services_own(argv: list[str], own_option: str) -> None:
    result = arb(*argv)
    assert result.returncode == 0, result.stderr
    assert own_option in result.stdout


# --- which process holds a port ----------------------------------------------------------------


def test_a_held_port_is_taken_and_its_holder_named(held_port: int) -> None:
    assert not is_free(held_port)
    assert listening_inodes(held_port)
    assert holder(held_port).startswith(f"pid {os.getpid()} (")


def test_a_free_port_is_free_and_held_by_nobody() -> None:
    port = free_port()
    assert is_free(port)
    assert holder(port) == "unknown process"


def test_holder_reads_proc(tmp_path: Path) -> None:
    """/proc/net/tcp's listening socket, and the process with that socket open."""
    (tmp_path / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  " \
             "timeout inode\n"
    listening = "   0: 0100007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000  " \
                "1000        0 4242 1 0000000000000000 100 0 0 10 0\n"
    connected = "   1: 0100007F:232A 0100007F:2329 01 00000000:00000000 00:00000000 00000000  " \
                "1000        0 4343 1 0000000000000000 100 0 0 10 0\n"
    (tmp_path / "net" / "tcp").write_text(header + listening + connected)
    (tmp_path / "net" / "tcp6").write_text(header)
    fds = tmp_path / "77" / "fd"
    fds.mkdir(parents=True)
    (fds / "3").symlink_to("socket:[4242]")
    (tmp_path / "77" / "cmdline").write_bytes(b"tansu\0broker\0--listener-url\0tcp://x:9001\0")

    assert listening_inodes(9001, tmp_path) == {4242}
    assert listening_inodes(9002, tmp_path) == set()  # connected, not listening
    assert holder(9001, tmp_path) == "pid 77 (tansu broker --listener-url tcp://x:9001)"
    (fds / "3").unlink()
    assert holder(9001, tmp_path) == "unknown process"


# --- arb start checks before it starts ---------------------------------------------------------


def assert_nothing_started(result: subprocess.CompletedProcess[str], marker: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert "broker_started" not in output and "running flink" not in output
    assert children_of(marker) == []


@pytest.mark.parametrize("setting", ["ARB_DASHBOARD_PORT", "ARB_PRODUCER_METRICS_PORT",
                                     "ARB_FLINK_METRICS_PORT"])
def test_start_refuses_a_taken_port_before_starting_anything(setting: str, held_port: int,
                                                             tmp_path: Path) -> None:
    env = {**start_env(tmp_path), setting: str(held_port)}

    result = arb("start", "--no-prometheus", env=env, timeout_s=30)

    assert_nothing_started(result, str(tmp_path))
    message = result.stdout + result.stderr
    assert f"port {held_port} ({setting}) is taken by pid {os.getpid()} (" in message


def test_a_second_start_names_the_first_ones_broker(tmp_path: Path) -> None:
    env = start_env(tmp_path)
    port = int(env["KAFKA_BOOTSTRAP_SERVERS"].rpartition(":")[2])
    with LocalBroker(port=port) as first:
        pid = first.pid
        result = arb("start", "--no-prometheus", env=env, timeout_s=30)

    assert_nothing_started(result, str(tmp_path))
    message = result.stdout + result.stderr
    assert f"port {port} (KAFKA_BOOTSTRAP_SERVERS) is taken by pid {pid} (" in message
    assert "tansu" in message
    assert "--no-broker" in message


def test_two_settings_on_one_port_are_refused(tmp_path: Path) -> None:
    env = start_env(tmp_path)
    env["ARB_ALERTER_METRICS_PORT"] = env["ARB_PRODUCER_METRICS_PORT"]

    result = arb("start", "--no-prometheus", env=env, timeout_s=30)

    assert_nothing_started(result, str(tmp_path))
    assert "ARB_PRODUCER_METRICS_PORT and ARB_ALERTER_METRICS_PORT are both" in result.stdout
