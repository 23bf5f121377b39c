"""What a user watches while a run goes: event lines, and a live status line on a TTY.

Fed only by the event bus plus a light periodic tick that reads the tail of the
run's request records (requests.ndjson), so the engine never calls into it and
Locust is never imported. On a terminal, one status line is redrawn in place:

    > fault  3.2s/10s  14.8s left | 48 done/s, 6 in flight | ok 120  retried 3  graceful 12 | ...

Requests count per second when they complete (a 10 s stream is counted when it ends, not
lost from a window of start times); "in flight" (and "dropped", open arrivals) come from
the status files each Locust process rewrites (chaos.load.arrivals).

Elsewhere (CI logs, pipes) the same events become plain lines, with a compact
progress line every few seconds; ``quiet`` keeps only what a CI log needs: the
assertions that did not pass and the verdict.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import TextIO

from chaos import outcomes as o
from chaos.load.arrivals import in_flight
from chaos.observe.events import (
    AssertionEvaluated,
    Event,
    FaultInjected,
    FaultRemoved,
    PhaseStarted,
    RunFinished,
    TeardownStarted,
)
from chaos.observe.lines import describe

SHORT = {o.OK: "ok", o.OK_AFTER_RETRY: "retried", o.GRACEFUL: "graceful", o.RESET: "reset",
         o.REFUSED: "refused", o.CONNECT_TIMEOUT: "conn-timeout", o.READ_TIMEOUT: "timeout",
         o.TRUNCATED: "truncated", o.CLOSED: "closed", o.OTHER: "other",
         o.TRUNCATED_SUCCESS: "no-terminator", o.STREAM_STALLED: "stalled",
         o.INBAND_ERROR: "inband-error", o.TLS_HANDSHAKE_FAILED: "tls-failed"}
CLEAR = "\r\x1b[2K"


def is_live(stream: TextIO) -> bool:
    """A real terminal that can redraw a line (not a CI log, not TERM=dumb)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb" and not os.environ.get("CI")


class RecordTail:
    """Reads request records appended since the last call; counts outcomes and rate."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.counts: Counter[str] = Counter()  # outcomes of the current phase
        self.recent: deque[float] = deque()  # request end times of the last few seconds
        self.phase = ""

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.counts.clear()

    def poll(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read(4 << 20)
        except OSError:
            return
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("phase") == self.phase:
                self.counts[str(record.get("outcome", "other"))] += 1
            started, latency = record.get("t"), record.get("latency_ms", 0)
            if isinstance(started, int | float) and isinstance(latency, int | float):
                self.recent.append(float(started) + float(latency) / 1000.0)

    def rps(self, now: float, window: float = 3.0) -> float:
        """Requests completed per second over the last full seconds (records land a moment
        after their request ends; ends arrive nearly in order, so old ones drop off)."""
        while self.recent and self.recent[0] < now - window - 1:
            self.recent.popleft()
        return sum(1 for t in self.recent if now - window - 1 <= t < now - 1) / window

    def load_status(self, now: float) -> str:
        """'N in flight[, D dropped]' from the Locust processes' status files, if any."""
        status = None if self.path is None else in_flight(self.path.parent, now)
        if status is None:
            return ""
        flying, dropped = status
        return f", {flying} in flight" + (f", {dropped} dropped" if dropped else "")


class Console:
    """Event listener printing to stderr; a ticker thread keeps the live line fresh."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False,
                 records: Path | None = None, total: float = 0.0, live: bool | None = None,
                 tick: float = 0.5, plain_every: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = is_live(self.stream) if live is None else live
        self.tail = RecordTail(records)
        self.total = total
        self.tick = tick
        self.plain_every = plain_every
        self.t0: float | None = None
        self.phase = ""
        self.phase_start = 0.0
        self.phase_duration = 0.0
        self.elapsed_before = 0.0  # seconds of the phases already done
        self.active: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.status_shown = False
        self.last_plain = 0.0

    # -- events -------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStarted):
            self._phase(event)
        elif isinstance(event, FaultInjected) and not event.restore:
            self.active.append(event.description)
        elif isinstance(event, FaultRemoved) and event.description in self.active:
            self.active.remove(event.description)
        elif isinstance(event, RunFinished | TeardownStarted):
            self._stop_ticker()
        if self.quiet and not self._wanted_when_quiet(event):
            return
        text = describe(event)
        if text:
            self.line(text)

    @staticmethod
    def _wanted_when_quiet(event: Event) -> bool:
        if isinstance(event, RunFinished):
            return True
        return isinstance(event, AssertionEvaluated) and (event.status or (
            "pass" if event.passed else "fail")) != "pass"

    def _phase(self, event: PhaseStarted) -> None:
        if self.t0 is None:
            self.t0 = self.last_plain = event.t
        else:
            self.elapsed_before += self.phase_duration
        self.phase, self.phase_start, self.phase_duration = event.phase, event.t, event.duration
        self.active = []
        with self.lock:
            self.tail.set_phase(event.phase)
        if not self.quiet and self.thread is None:
            self.thread = threading.Thread(target=self._run_ticker, name="chaos-console",
                                           daemon=True)
            self.thread.start()

    # -- output -------------------------------------------------------------------------
    def line(self, text: str) -> None:
        stamp = "" if self.t0 is None else f"{time.time() - self.t0:6.1f}s "
        with self.lock:
            if self.live and self.status_shown:
                self.stream.write(CLEAR)
            self.stream.write(f"[chaos] {stamp}{text}\n")
            if self.live and self.status_shown:
                self.stream.write(self.status())
            self.stream.flush()

    def status(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        in_phase = max(0.0, now - self.phase_start)
        left = max(0.0, self.total - self.elapsed_before - in_phase) if self.total else 0.0
        counts = "  ".join(f"{SHORT.get(k, k)} {v}" for k, v in sorted(
            self.tail.counts.items(), key=lambda kv: (kv[0] != "ok", kv[0])))
        parts = [f"> {self.phase}  {min(in_phase, self.phase_duration):4.1f}s/"
                 f"{self.phase_duration:g}s" + (f"  {left:.0f}s left" if self.total else ""),
                 f"{self.tail.rps(now):.0f} done/s{self.tail.load_status(now)}",
                 counts or "no requests yet"]
        if self.active:
            parts.append("faults: " + "; ".join(self.active))
        text = " | ".join(parts)
        width = _width(self.stream)
        return text if len(text) < width else text[: max(10, width - 2)] + "…"

    def _run_ticker(self) -> None:
        while not self.stop.wait(self.tick):
            with self.lock:
                self.tail.poll()
                if self.live:
                    self.stream.write(CLEAR + self.status())
                    self.status_shown = True
                    self.stream.flush()
                elif time.time() - self.last_plain >= self.plain_every:
                    self.last_plain = time.time()
                    if self.t0 is not None and time.time() - self.phase_start > self.tick:
                        self.stream.write(f"[chaos] {time.time() - self.t0:6.1f}s   "
                                          f"progress: {self.status()[2:]}\n")
                        self.stream.flush()

    def _stop_ticker(self) -> None:
        self.stop.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=2)
        with self.lock:
            if self.live and self.status_shown:
                self.stream.write(CLEAR)
                self.stream.flush()
            self.status_shown = False

    def close(self) -> None:
        self._stop_ticker()


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 160
    return columns if columns >= 40 else 160  # a pty without a size reports 0
