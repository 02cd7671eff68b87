"""Progress of long phases on stderr: what runs now, how far, and the time left.

The bar is redrawn only when told (no refresh thread): a second busy Python thread would compete
with the timed calls for the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)

Update = Callable[[float, str], None]
"""``update(done, what_now)``: ``done`` in the bar's units (samples, estimated seconds)."""


@contextmanager
def bar(label: str, total: float, unit: str = "") -> Iterator[Update]:
    columns = (
        TextColumn(f"[bold]{label}[/bold] {{task.description}}"),
        BarColumn(),
        TextColumn(f"{{task.completed:.0f}}/{{task.total:.0f}}{unit}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, auto_refresh=False) as progress:
        task = progress.add_task("", total=total)

        def update(done: float, what: str = "") -> None:
            progress.update(task, completed=min(done, total), description=what, refresh=True)

        yield update
        progress.update(task, completed=total, description="done", refresh=True)
