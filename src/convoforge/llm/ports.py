"""TCP ports of the servers convoforge starts: a free one, or the user's one checked before anything starts."""

from __future__ import annotations

import errno
import socket

from convoforge.errors import ConvoforgeError


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bind_port(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a one-line error naming the port when it is taken or not allowed."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: a port in TIME_WAIT is free
        sock.bind((host, port))
        sock.listen()
        return sock
    except OSError as exc:
        sock.close()
        hint = "; pick another --port" if exc.errno == errno.EADDRINUSE else ""
        raise ConvoforgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
