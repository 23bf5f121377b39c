"""The reference backend's journal ring (docker/backend/journal.py), without a server: what
`GET /journal?after=N&limit=M` hands the harness, overflow and restarts included."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chaos.runtime.paths import shared_modules

JOURNAL = Path(__file__).resolve().parents[2] / "docker" / "backend" / "journal.py"


@pytest.fixture(scope="module")
def journal() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ref_backend_journal", JOURNAL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(shared_modules()))  # journal_ring, beside it in the image
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(shared_modules()))
    return module


def _fill(book: Any, count: int) -> None:
    for i in range(count):
        book.append([0, ("127.0.0.1", 5000), f"rid{i}", "GET", "/", 1.0, 1.1, 1.2, 200,
                     "complete", None, None])


def test_reading_after_a_seq_pages_through_the_ring(journal: ModuleType) -> None:
    book = journal.Journal(100, "X-Chaos-Request-Id", None)
    _fill(book, 5)
    page = book.read(0, 2)
    assert page["journal"] is True and page["dropped"] == 0
    assert [a["seq"] for a in page["attempts"]] == [1, 2] and page["next"] == 2
    assert page["attempts"][0] == {"seq": 1, "conn": "127.0.0.1:5000", "rid": "rid0",
                                   "method": "GET", "path": "/", "t": 1.0, "first_byte": 1.1,
                                   "end": 1.2, "status": 200, "ended": "complete",
                                   "retry_after": None, "events": None}
    assert [a["seq"] for a in book.read(2, 100)["attempts"]] == [3, 4, 5]
    assert book.read(5, 100) == {"journal": True, "attempts": [], "next": 5, "dropped": 0}


def test_an_overflowing_ring_counts_what_it_dropped(journal: ModuleType) -> None:
    book = journal.Journal(3, "X-Chaos-Request-Id", None)
    _fill(book, 5)
    page = book.read(0, 100)
    assert [a["seq"] for a in page["attempts"]] == [3, 4, 5] and page["dropped"] == 2


def test_after_beyond_the_last_seq_means_the_backend_restarted(journal: ModuleType) -> None:
    book = journal.Journal(10, "X-Chaos-Request-Id", None)
    _fill(book, 2)
    assert [a["seq"] for a in book.read(900, 100)["attempts"]] == [1, 2]
