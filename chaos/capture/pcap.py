"""A small pcap reader: enough of Ethernet / Linux cooked (v1, v2) / raw IP, IPv4 and TCP.

The harness only needs who sent which TCP control packet when (SYN, FIN, RST), so a
few dozen lines of `struct` beat a dependency. Files are classic libpcap format
(what `tcpdump -w` writes), micro- or nanosecond timestamps, either byte order.
Anything else (IPv6, UDP, truncated headers) is skipped and counted, never an error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chaos.errors import PcapError

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
LINK_ETHERNET, LINK_RAW, LINK_RAW_OLD, LINK_SLL, LINK_SLL2, LINK_IPV4 = 1, 101, 12, 113, 276, 228
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
ETH_IPV4 = 0x0800


@dataclass(frozen=True)
class Packet:
    ts: float  # epoch seconds
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    payload: int = 0  # TCP payload bytes (as far as the capture says: the wire length)

    @property
    def syn(self) -> bool:
        return bool(self.flags & SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & RST)

    def flag_text(self) -> str:
        names = [(SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, ".")]
        return "".join(letter for bit, letter in names if self.flags & bit) or "-"


@dataclass
class ReadStats:
    packets: int = 0
    tcp: int = 0
    skipped: int = 0  # not IPv4/TCP, or headers cut short
    truncated_file: bool = False  # the last record was cut short (a file still being written)


def _ip_offset(link: int, frame: bytes) -> int | None:
    """Where the IPv4 header starts in a frame, or None when it is not IPv4."""
    if link == LINK_ETHERNET:
        if len(frame) < 14:
            return None
        offset, ethertype = 14, struct.unpack_from(">H", frame, 12)[0]
        while ethertype in (0x8100, 0x88A8) and len(frame) >= offset + 4:  # VLAN tags
            ethertype = struct.unpack_from(">H", frame, offset + 2)[0]
            offset += 4
        return offset if ethertype == ETH_IPV4 else None
    if link == LINK_SLL:
        if len(frame) < 16:
            return None
        return 16 if struct.unpack_from(">H", frame, 14)[0] == ETH_IPV4 else None
    if link == LINK_SLL2:
        if len(frame) < 20:
            return None
        return 20 if struct.unpack_from(">H", frame, 0)[0] == ETH_IPV4 else None
    if link in (LINK_RAW, LINK_RAW_OLD, LINK_IPV4):
        return 0 if frame[:1] and frame[0] >> 4 == 4 else None
    return None


def parse_frame(link: int, ts: float, frame: bytes, wire_len: int | None = None) -> Packet | None:
    """One captured frame as a TCP packet, or None."""
    ip = _ip_offset(link, frame)
    if ip is None or len(frame) < ip + 20 or frame[ip] >> 4 != 4:
        return None
    ihl = (frame[ip] & 0x0F) * 4
    total_len = struct.unpack_from(">H", frame, ip + 2)[0]
    if frame[ip + 9] != 6 or ihl < 20:  # protocol 6: TCP
        return None
    tcp = ip + ihl
    if len(frame) < tcp + 14:
        return None
    src = ".".join(str(b) for b in frame[ip + 12:ip + 16])
    dst = ".".join(str(b) for b in frame[ip + 16:ip + 20])
    sport, dport = struct.unpack_from(">HH", frame, tcp)
    data_offset = (frame[tcp + 12] >> 4) * 4
    flags = frame[tcp + 13]
    payload = max(total_len - ihl - data_offset, 0)
    return Packet(ts, src, dst, sport, dport, flags, payload)


def read_packets(path: Path, stats: ReadStats | None = None) -> Iterator[Packet]:
    """TCP/IPv4 packets of one pcap file in file order."""
    stats = stats if stats is not None else ReadStats()
    with path.open("rb") as handle:
        header = handle.read(24)
        if len(header) < 24 or header[:4] not in MAGICS:
            raise PcapError(f"{path}: not a pcap file")
        order, unit = MAGICS[header[:4]]
        link = struct.unpack_from(order + "I", header, 20)[0] & 0x0FFFFFFF
        record = struct.Struct(order + "IIII")
        while True:
            head = handle.read(16)
            if not head:
                return
            if len(head) < 16:
                stats.truncated_file = True
                return
            sec, frac, incl, orig = record.unpack(head)
            frame = handle.read(incl)
            if len(frame) < incl:
                stats.truncated_file = True
                return
            stats.packets += 1
            packet = parse_frame(link, sec + frac * unit, frame, orig)
            if packet is None:
                stats.skipped += 1
                continue
            stats.tcp += 1
            yield packet


def write_pcap(path: Path, packets: list[tuple[float, bytes]], link: int = LINK_ETHERNET) -> None:
    """A classic microsecond pcap (for tests and for cutting one connection's packets out)."""
    with path.open("wb") as handle:
        handle.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link))
        for ts, frame in packets:
            sec = int(ts)
            handle.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(frame),
                                     len(frame)))
            handle.write(frame)


def tcp_frame(src: str, dst: str, sport: int, dport: int, flags: int, payload: bytes = b"",
              link: int = LINK_ETHERNET) -> bytes:
    """A minimal frame carrying one TCP segment (checksums left zero: readers ignore them)."""
    tcp = struct.pack(">HHIIBBHHH", sport, dport, 0, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     bytes(int(x) for x in src.split(".")), bytes(int(x) for x in dst.split(".")))
    if link == LINK_ETHERNET:
        return b"\x02" * 6 + b"\x04" * 6 + struct.pack(">H", ETH_IPV4) + ip + tcp
    if link == LINK_SLL:
        return struct.pack(">HHH8sH", 0, 1, 6, b"\0" * 8, ETH_IPV4) + ip + tcp
    if link == LINK_SLL2:
        return struct.pack(">HHIHBB8s", ETH_IPV4, 0, 2, 1, 0, 6, b"\0" * 8) + ip + tcp
    return ip + tcp
