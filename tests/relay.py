"""A TCP relay in front of a real server, for fault injection: outages and lost replies.

``TcpRelay(target_port)`` forwards ``127.0.0.1:<relay.port>`` to the target while started and
refuses connections while stopped (an outage). It also records every HTTP request line it
forwards, and can drop the reply of requests whose line matches a pattern:

* ``"after"``: the request reaches the server, the server answers, the relay throws the answer
  away and closes the client's connection (the server acted; the client sees "Server disconnected
  without sending a response");
* ``"early"``: the relay forwards the whole request, then closes the client's connection at once,
  while the server is still working on it (it finishes anyway);
* ``"swallow"``: the relay closes the client's connection without forwarding the request (the
  server never saw it; the client cannot tell this from the other two).
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from dataclasses import dataclass, field

from tests.labelstudio_server import free_port

METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ")


@dataclass
class DropRule:
    pattern: re.Pattern[str]
    times: int
    mode: str  # "after" | "early" | "swallow"
    dropped: int = 0


@dataclass
class _Connection:
    client: socket.socket
    upstream: socket.socket
    drop: str | None = None  # mode of the reply being dropped, if any
    closed: threading.Event = field(default_factory=threading.Event)

    def close_client(self) -> None:
        try:
            self.client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.client.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class TcpRelay:
    """Forwards 127.0.0.1:<port> to a target port while started; refused while stopped."""

    def __init__(self, target_port: int) -> None:
        self.port, self.target = free_port(), ("127.0.0.1", target_port)
        self._server: socketserver.ThreadingTCPServer | None = None
        self._lock = threading.Lock()
        self.rules: list[DropRule] = []
        self.request_lines: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- fault control ---------------------------------------------------------------------
    def drop_replies(self, pattern: str, times: int = 1, mode: str = "after") -> DropRule:
        """Drop the replies of the next ``times`` requests whose request line (``"POST
        /api/projects/3/import?... HTTP/1.1"``) matches the regex ``pattern``."""
        if mode not in ("after", "early", "swallow"):
            raise ValueError(f"mode must be 'after', 'early' or 'swallow'; got {mode!r}")
        rule = DropRule(re.compile(pattern), times, mode)
        with self._lock:
            self.rules.append(rule)
        return rule

    def seen(self, pattern: str) -> list[str]:
        """Request lines forwarded so far that match the regex ``pattern``."""
        with self._lock:
            return [line for line in self.request_lines if re.search(pattern, line)]

    def _on_request(self, line: str) -> str | None:
        with self._lock:
            self.request_lines.append(line)
            for rule in self.rules:
                if rule.dropped < rule.times and rule.pattern.search(line):
                    rule.dropped += 1
                    return rule.mode
        return None

    # -- the pipes -------------------------------------------------------------------------
    def _client_to_upstream(self, conn: _Connection) -> None:
        try:
            while data := conn.client.recv(65536):
                if data.startswith(METHODS) and b"\r\n" in data:
                    line = data.split(b"\r\n", 1)[0].decode("latin-1")
                    mode = self._on_request(line)
                    if mode == "swallow":
                        conn.close_client()
                        return
                    if mode == "early":
                        self._forward_whole_request(conn, data)
                        conn.drop = "early"
                        conn.close_client()
                        return
                    conn.drop = mode
                conn.upstream.sendall(data)
            conn.upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _forward_whole_request(self, conn: _Connection, data: bytes) -> None:
        """Read the rest of the request (headers and a Content-Length body) and forward it."""
        while b"\r\n\r\n" not in data:
            more = conn.client.recv(65536)
            if not more:
                break
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        need = _content_length(head)
        while len(body) < need:
            more = conn.client.recv(65536)
            if not more:
                break
            body += more
        conn.upstream.sendall(head + b"\r\n\r\n" + body)

    def _upstream_to_client(self, conn: _Connection) -> None:
        try:
            while data := conn.upstream.recv(65536):
                if conn.drop is not None:  # the server answered: throw the answer away
                    if conn.drop == "after":
                        conn.close_client()
                    return
                conn.client.sendall(data)
            conn.client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def start(self) -> None:
        relay, target = self, self.target

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with socket.create_connection(target, timeout=60) as upstream:
                    conn = _Connection(self.request, upstream)
                    back = threading.Thread(target=relay._upstream_to_client, args=(conn,),
                                            daemon=True)
                    back.start()
                    relay._client_to_upstream(conn)
                    back.join(60)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address, daemon_threads, block_on_close = True, True, False

        self._server = Server(("127.0.0.1", self.port), Pipe)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
