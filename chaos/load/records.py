"""The locustfile's record writer: requests and dropped arrivals out of Locust, as NDJSON.

Runs inside Locust's gevent process, imported by chaos/load/locustfile.py only, so it
imports the standard library alone. One ``RecordWriter`` per process holds the records not
yet written, the dropped arrivals and the in-flight/dropped counts; the locustfile fills
them and flushes them from a background greenlet.

A request belongs to the phase in which it ended: the phase file holds
"<epoch>\\t<phase>" lines, read again before each flush. A local runner and local
`--processes` workers append to the records file directly (one O_APPEND write per flush,
so lines never interleave); in forward mode (workers on other machines) nothing is
written here: the records travel in Locust's worker reports and the master writes them.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from typing import Any


class RecordWriter:
    """Pending records, dropped arrivals and counts of one Locust process, and their files."""

    def __init__(self, config: dict[str, Any], forward: bool) -> None:
        self.config = config
        self.forward = forward
        self.pending: list[dict[str, Any]] = []
        self.dropped: list[float] = []  # scheduled times of dropped arrivals, not yet written
        self.counts = {"in_flight": 0, "dropped": 0}
        self.phase_starts: list[float] = []
        self.phase_names: list[str] = []
        self._fd: int | None = None

    def _records_fd(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.config["records"], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                               0o644)
        return self._fd

    def read_phases(self) -> None:
        try:
            with open(self.config["phase_file"]) as handle:
                lines = handle.read().splitlines()
        except OSError:
            return
        for line in lines[len(self.phase_starts):]:
            stamp, _, name = line.partition("\t")
            if name:
                self.phase_starts.append(float(stamp))
                self.phase_names.append(name)

    def phase_at(self, moment: float) -> str:
        index = bisect.bisect_right(self.phase_starts, moment) - 1
        return self.phase_names[index] if index >= 0 else "warmup"

    def flush(self) -> None:
        """Assign phases (now that the phase file is fresh) and append in one write."""
        if self.forward or not self.pending:
            return
        self.read_phases()
        dumps = json.dumps
        phase_at = self.phase_at
        lines = [
            f'{{"t":{r["t"]},"phase":{dumps(phase_at(r["t"] + r["latency_ms"] / 1000.0))},'
            f'"name":{dumps(r["name"])},"status":{r["status"]},"latency_ms":{r["latency_ms"]},'
            f'"bytes":{r["bytes"]},"outcome":"{r["outcome"]}","detail":{dumps(r["detail"])}'
            f'{_conn_field(r.get("conn"))}{_sched_field(r.get("sched"))}{_id_fields(r)}'
            f'{_tls_field(r.get("tls_ms"))}{_llm_fields(r.get("llm"), dumps)}}}'
            for r in self.pending
        ]
        self.pending.clear()
        os.write(self._records_fd(), ("\n".join(lines) + "\n").encode())

    def flush_dropped(self) -> None:
        if self.forward or not self.dropped or not self.config.get("dropped"):
            return
        text = "".join(f'{{"t":{t}}}\n' for t in self.dropped)
        self.dropped.clear()
        fd = os.open(self.config["dropped"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def write_status(self) -> None:
        """This process's in-flight and dropped counts, replaced atomically (the console reads)."""
        folder = self.config.get("status_dir")
        if not folder:
            return
        path = os.path.join(folder, f"{os.getpid()}.json")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(path + ".tmp", "w") as handle:
                json.dump({"t": round(time.time(), 3), **self.counts}, handle)
            os.replace(path + ".tmp", path)
        except OSError:
            pass  # a worker on another machine: the run folder is not here


def _conn_field(conn: Any) -> str:
    if not conn:
        return ""
    local = "null" if conn[0] is None else f'"{conn[0]}"'
    return f',"conn":[{local},{int(conn[1])},"{conn[2]}",{int(conn[3])}]'


def _sched_field(sched: Any) -> str:
    return "" if sched is None else f',"sched":{sched}'


def _tls_field(tls_ms: Any) -> str:
    """load.tls: the handshake the request opened its connection with (none on reuse)."""
    return "" if tls_ms is None else f',"tls_ms":{float(tls_ms)}'


def _id_fields(r: dict[str, Any]) -> str:
    """rid (uuid4 hex), method (one of the scenario's verbs), hdr_retries (int): all made by
    the harness itself, so formatted without json.dumps."""
    rid, method, retries = r.get("rid"), r.get("method"), r.get("hdr_retries")
    return ((f',"rid":"{rid}"' if rid else "") + (f',"method":"{method}"' if method else "")
            + ("" if retries is None else f',"hdr_retries":{int(retries)}'))


# The LLM fields in the order records carry them (README "requests.ndjson"): streaming
# requests ttft_ms .. done, chat answers tokens and finish_reason, token-aware mix items
# prompt_tokens and max_tokens, every record retry_after.
LLM_FIELDS = ("ttft_ms", "itl_ms", "itl_more", "tokens", "finish_reason", "done",
              "prompt_tokens", "max_tokens", "retry_after")


def _llm_fields(llm: dict[str, Any] | None, dumps: Any) -> str:
    if not llm:
        return ',"retry_after":null'
    return "".join(f',"{key}":{dumps(llm[key])}' for key in LLM_FIELDS if key in llm)
