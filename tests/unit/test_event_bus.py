"""The event bus keeps a broken listener from stopping a run, but never swallows SIGTERM."""

from __future__ import annotations

import pytest

from chaos.errors import Interrupted
from chaos.observe.events import EventBus, LoadWarning


def test_sigterm_landing_inside_a_listener_still_stops_the_run() -> None:
    """SIGTERM is raised as Interrupted wherever the main thread is, a console print included
    (test_cleanup's SIGTERM-containers case once ran on to a PASS, exit 0, this way)."""
    bus = EventBus()

    def terminated(event: object) -> None:
        raise Interrupted("terminated by SIGTERM")

    bus.subscribe(terminated)
    with pytest.raises(Interrupted):
        bus.emit(LoadWarning(text="service toxiproxy ready"))


def test_a_broken_listener_is_reported_and_the_others_still_hear(
        capsys: pytest.CaptureFixture[str]) -> None:
    bus = EventBus()
    heard: list[str] = []
    bus.subscribe(lambda event: (_ for _ in ()).throw(ValueError("broken")))
    bus.subscribe(lambda event: heard.append(event.kind))
    bus.emit(LoadWarning(text="x"))
    assert heard == ["load_warning"]
    assert "listener error: broken" in capsys.readouterr().err
