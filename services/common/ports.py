"""Is a TCP port free, and if not, which process listens on it.

``arb start`` asks before it starts anything, so a second run stops at once naming the port,
its setting and its holder, instead of getting half way and dying on "Address already in use".
The holder comes from /proc/net/tcp{,6} (the listening socket's inode) and /proc/*/fd (who has
that socket open); where that cannot be read (another user's process, not Linux) it is
"unknown process".
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # TCP state in /proc/net/tcp


def is_free(port: int) -> bool:
    """True when nothing listens on ``port`` (IPv4 or IPv6) and it can be bound on every IPv4
    interface: the strictest test, whichever address the service binds it on."""
    if listening_inodes(port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: a connection of an earlier run in TIME_WAIT is no conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - bound for a moment, never listened on
        except OSError:
            return False
    return True


def listening_inodes(port: int, proc: Path = PROC) -> set[int]:
    """Inodes of the sockets listening on ``port`` (IPv4 and IPv6), from /proc/net."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def holder(port: int, proc: Path = PROC) -> str:
    """``pid 123 (command line)`` of the process listening on ``port``, or "unknown process"."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port, proc)}
    if wanted:
        for pid_dir in proc.iterdir():
            if not pid_dir.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                for fd in (pid_dir / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if fd.readlink().as_posix() in wanted:
                            return f"pid {pid_dir.name} ({_command(pid_dir)})"
    return "unknown process"


def _command(pid_dir: Path) -> str:
    try:
        argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(" ".join(a.decode("utf-8", "replace").split()) for a in argv if a)
    return text if len(text) <= 120 else text[:117] + "..."
