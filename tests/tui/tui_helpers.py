"""Pilot helpers shared by the TUI tests."""

from __future__ import annotations

from textual.pilot import Pilot


async def settle(pilot: Pilot, rounds: int = 3) -> None:
    """Let timers fire, workers finish and their messages be handled."""
    app = pilot.app
    for _ in range(rounds):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()


async def type_query(pilot: Pilot, text: str) -> None:
    """Type into whatever has focus (the search box unless a test moved it), then settle."""
    await settle(pilot, rounds=1)  # the first key must not arrive before focus is set
    await pilot.press(*[("space" if c == " " else c) for c in text])
    await settle(pilot)


async def wait_for(pilot: Pilot, condition: object, timeout: float = 15.0) -> bool:
    """Pause until ``condition()`` holds (workers posting back on a loaded machine)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        await pilot.pause(0.05)
    return bool(condition())  # type: ignore[operator]


def screen_text(app: object) -> str:
    """What the terminal shows now, as text: the compositor's full frame, as
    ``App.export_screenshot`` renders it, without the SVG."""
    import io

    from rich.console import Console

    width, height = app.size  # type: ignore[attr-defined]
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False,
                      safe_box=False)
    screen = app.screen  # type: ignore[attr-defined]
    console.print(screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))  # type: ignore[attr-defined]
    return console.export_text()


class IngestGate:
    """Holds a real ``trawl.ingest.index_paths`` run after its first committed batch, so a
    test can press keys while an ingestion is really in flight (then ``release``)."""

    def __init__(self, monkeypatch: object, hold_s: float = 30.0) -> None:
        import threading

        import trawl.ingest

        self.reached = threading.Event()
        self.released = threading.Event()
        real = trawl.ingest.index_paths

        def gated(*args: object, on_status: object = None, **kwargs: object) -> object:
            def status(s: object) -> None:
                if on_status is not None:
                    on_status(s)  # type: ignore[operator]
                if s.documents and not self.reached.is_set():  # type: ignore[attr-defined]
                    self.reached.set()
                    self.released.wait(timeout=hold_s)

            return real(*args, on_status=status, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(trawl.ingest, "index_paths", gated)  # type: ignore[attr-defined]

    def release(self) -> None:
        self.released.set()


def write_files(folder: object, count: int) -> None:
    from pathlib import Path

    root = Path(str(folder))
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"note{i:03d}.md").write_text(f"# Note {i}\n\ntide log entry number {i}\n")
