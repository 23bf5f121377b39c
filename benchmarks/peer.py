"""The far end of every benchmark connection, run as its own process.

It lives in a separate process so that neither the measuring client nor the
proxy shares its interpreter lock. The first byte of a connection picks the
mode: ``S`` sink (read to EOF, answer the byte count as 8 bytes), ``E`` echo
(answer every read with the same bytes). Blocking sockets on threads: the
kernel copies do the work, so this end is never the bottleneck.
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


def main() -> int:
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
