"""The witness poller: drains every source's attempts into run_dir/upstream.ndjson.

A source is the embedded proxy's tap on one proxy (``GET /proxies/{name}/attempts``) or a
service's journal (``GET /journal``); both answer ``?after=<seq>&limit=<n>`` with
``{"attempts": [...], "next": seq, "dropped": n, "connections": {...}}`` (the witness
contract, section 2). A thread drains each source every second, and ``stop()`` once more
before teardown, so what the gateway sent upstream is read while the ring still holds it.

A counter that restarted (a journal whose process came back: its seq begins again at 1)
is read from its start again. Records the poller never saw (the ring overflowed past it)
show as gaps in seq and are counted as ``dropped``.

A source that stops answering mid-run is a broken harness part (``check()``, for the
watchdog: exit 3 naming it), unless it is a journal whose service a fault of the scenario
has hit (``excused``): then its silence is a gap in the witness, noted in the summary.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

INTERVAL_S = 1.0
LIMIT = 10_000
PAGES = 50  # at most this many pages per source and drain: a drain always ends
MISSES = 3  # consecutive failed drains before a source counts as dead
Finding = tuple[str, str, str, float | None]  # as chaos.observe.watchdog's checks return


@dataclass
class Source:
    """One place attempts are read from, and what was read from it so far."""

    name: str  # "tap:backend" | "journal:backend"
    url: str  # the attempts endpoint, without query
    service: str | None = None  # a journal's service: a fault on it excuses its silence
    resolve: Callable[[], str] | None = None  # where it is now (a restarted service moves)
    after: int = 0
    attempts: int = 0
    dropped: int = 0  # seqs never read (the ring overflowed past the poller)
    restarts: int = 0  # the source's counter began again
    connections: dict[str, int] = field(default_factory=dict)
    base_connections: dict[str, int] = field(default_factory=dict)  # before a restart
    misses: int = 0
    silent_since: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)  # excused silences
    error: str = ""

    @property
    def kind(self) -> str:
        return self.name.partition(":")[0]

    def total_connections(self) -> dict[str, int]:
        keys = set(self.connections) | set(self.base_connections)
        return {k: self.connections.get(k, 0) + self.base_connections.get(k, 0)
                for k in sorted(keys)}

    def restarted(self) -> None:
        self.after = 0
        self.restarts += 1
        self.base_connections = self.total_connections()
        self.connections = {}


class _SourceError(Exception):
    """A source did not answer, or answered something that is not a page of attempts."""


class WitnessPoller:
    """Drains ``sources`` into ``path`` in a thread; ``stop()`` drains once more."""

    def __init__(self, sources: list[Source], path: Path,
                 excused: Callable[[str], bool] = lambda service: False,
                 interval: float = INTERVAL_S, limit: int = LIMIT) -> None:
        self.sources, self.path, self.excused = sources, path, excused
        self.interval, self.limit = interval, limit
        self.failure: Finding | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one drain at a time: the thread's or stop()'s
        self._thread = threading.Thread(target=self._run, name="witness", daemon=True)
        self._http = requests.Session()
        self._out: IO[str] | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.drain()

    def stop(self) -> None:
        """The last drain (before teardown removes the sources); never raises."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            self.drain(final=True)
        finally:
            self._http.close()
            if self._out is not None:
                self._out.close()
                self._out = None

    def check(self) -> Finding | None:
        """For the watchdog: a source that stopped answering, unexcused (None: all well)."""
        return self.failure

    def drain(self, final: bool = False) -> None:
        with self._lock:
            for source in self.sources:
                self._drain_one(source, final)
            if self._out is not None:
                self._out.flush()

    def _drain_one(self, source: Source, final: bool) -> None:
        now = time.time()
        try:
            for _ in range(PAGES):
                if self._page(source) < self.limit:
                    break
        except _SourceError as exc:
            source.error = str(exc)
            self._missed(source, now, final)
            if source.resolve is not None:
                source.url = source.resolve()
            return
        if source.silent_since is not None and source.service is not None \
                and self.excused(source.service):
            source.gaps.append((source.silent_since, now))
        source.misses, source.silent_since = 0, None

    def _missed(self, source: Source, now: float, final: bool) -> None:
        source.misses += 1
        if source.silent_since is None:
            source.silent_since = now
        if source.service is not None and self.excused(source.service):
            return  # the scenario faulted the journal's service: a gap, not a dead part
        if source.misses >= MISSES and not final and self.failure is None:
            self.failure = (f"the upstream witness {source.name} ({source.url})",
                            f"stopped answering ({source.misses} drains failed)",
                            source.error, source.silent_since)

    def _page(self, source: Source) -> int:
        """One page read and written; the number of records it held."""
        body = self._get(source)
        records = [r for r in body.get("attempts") or [] if isinstance(r, dict)]
        seqs = [r["seq"] for r in records if isinstance(r.get("seq"), int)]
        nxt = body.get("next")
        if (isinstance(nxt, int) and nxt < source.after) or (seqs and seqs[0] <= source.after):
            source.restarted()  # its counter began again: read it from its start
            if not seqs or seqs[0] > 1:
                body = self._get(source)
                records = [r for r in body.get("attempts") or [] if isinstance(r, dict)]
                seqs = [r["seq"] for r in records if isinstance(r.get("seq"), int)]
        expected = source.after + 1
        for seq in seqs:
            source.dropped += max(0, seq - expected)
            expected = seq + 1
        self._write(records, source.name)
        source.attempts += len(records)
        source.after = max([source.after, *seqs])
        connections = body.get("connections")
        if isinstance(connections, dict):
            source.connections = {str(k): int(v) for k, v in connections.items()
                                  if isinstance(v, int)}
        return len(records)

    def _get(self, source: Source) -> dict[str, Any]:
        try:
            response = self._http.get(source.url, params={"after": source.after,
                                                          "limit": self.limit},
                                      timeout=(1.0, 5.0))
        except requests.RequestException as exc:
            raise _SourceError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise _SourceError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError as exc:
            raise _SourceError(f"not JSON: {response.text[:200]!r}") from exc
        if not isinstance(body, dict):
            raise _SourceError(f"not a page of attempts: {response.text[:200]!r}")
        return body

    def _write(self, records: list[dict[str, Any]], source: str) -> None:
        if not records:
            return
        if self._out is None:
            self._out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - stop() closes
        self._out.write("".join(json.dumps({**r, "source": source}, separators=(",", ":"))
                                + "\n" for r in records))

    def summary(self, kind: str, note: str = "") -> dict[str, Any]:
        """result.witness (contract section 3): kind, sources, attempts, dropped,
        connections, note (why none, what was not seen)."""
        connections = {"http": 0, "tls": 0, "unknown": 0}
        for source in self.sources:
            for key, value in source.total_connections().items():
                connections[key] = connections.get(key, 0) + value
        notes = [note] if note else []
        notes += self._notes(connections)
        return {"kind": kind, "sources": [s.name for s in self.sources],
                "attempts": sum(s.attempts for s in self.sources),
                "dropped": sum(s.dropped for s in self.sources),
                "connections": connections, "note": "; ".join(notes)}

    def _notes(self, connections: dict[str, int]) -> list[str]:
        notes = []
        opaque = connections.get("tls", 0) + connections.get("unknown", 0)
        if opaque:
            notes.append(f"{opaque} connections were TLS or not HTTP: counted per connection only")
        for source in self.sources:
            for start, end in source.gaps:
                notes.append(f"{source.name} did not answer for {end - start:.1f} s while "
                             f"{source.service} was faulted: attempts in that gap may be missing")
            if source.silent_since is not None:
                notes.append(f"{source.name} did not answer at the end of the run "
                             f"({source.error}): its last attempts may be missing")
            if source.restarts:
                notes.append(f"{source.name} restarted {source.restarts} time(s): what it "
                             "journalled and the poller had not read yet is lost")
            if source.dropped:
                notes.append(f"{source.dropped} attempts of {source.name} were dropped (its "
                             "ring overflowed before they were read)")
        return notes
