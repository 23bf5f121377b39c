"""The far end of every benchmark connection, run as its own process.

It lives in a separate process so that neither the measuring client nor the
proxy shares its interpreter lock. The first byte of a connection picks the
mode: ``S`` sink (read to EOF, answer the byte count as 8 bytes), ``E`` echo
(answer every read with the same bytes), ``P``/``G`` HTTP/1.1 keep-alive (read
each request's Content-Length body, answer ``X-Reply`` bytes with Content-Length).
Blocking sockets on threads: the kernel copies do the work, so this end is never the bottleneck.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading

BUFFER = 1 << 20


def _serve(conn: socket.socket) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = conn.recv(1)
        if mode == b"S":
            buf = bytearray(BUFFER)
            total = 0
            while count := conn.recv_into(buf):
                total += count
            conn.sendall(struct.pack("!Q", total))
        elif mode == b"E":
            while data := conn.recv(65536):
                conn.sendall(data)
        elif mode in (b"P", b"G"):
            _http(conn, mode)


def _header(head: bytes, name: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return int(value)
    return 0


def _http(conn: socket.socket, buf: bytes) -> None:
    sink = bytearray(BUFFER)
    block = b"r" * BUFFER
    while True:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        left = _header(head, b"content-length")
        taken = min(left, len(buf))
        buf, left = buf[taken:], left - taken
        while left:
            count = conn.recv_into(sink, min(left, BUFFER))
            if not count:
                return
            left -= count
        reply = _header(head, b"x-reply")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % reply)
        while reply:
            sent = conn.send(block[:min(reply, BUFFER)])
            reply -= sent


def main() -> int:
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
