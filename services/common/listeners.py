"""Who holds a TCP port: what a supervisor or a service says when a port it needs is taken.

Linux only (``/proc``): the listening sockets of ``/proc/net/tcp`` and ``tcp6`` give the socket's
inode, and the ``/proc/<pid>/fd`` links of the processes this user may read name the one holding it.
Elsewhere, or when the holder belongs to another user, the answer is None and the message says less.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                inodes.add(fields[9])
    return inodes


def _command(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    text = " ".join(words) or "?"
    return text if len(text) <= 160 else text[:157] + "..."


def port_holder(port: int, proc: Path = Path("/proc")) -> Holder | None:
    """The process listening on TCP ``port`` (any address), if this user can see it."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:  # another user's process, or gone
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link in wanted:
                return Holder(int(pid_dir.name), _command(pid_dir))
    return None


def describe_port_in_use(address: str) -> str:
    """'host:port is in use by pid N (command)', or without the holder when it cannot be seen."""
    port_text = address.rpartition(":")[2]
    holder = port_holder(int(port_text)) if port_text.isdigit() and int(port_text) > 0 else None
    return f"{address} is in use" + (f" by {holder}" if holder is not None else " (by a process this user cannot see)")


def bind_tcp(address: str) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free one), address reuse on, not yet listening:
    what a web server (uvicorn) is handed, so the port is known before it serves."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    return sock
