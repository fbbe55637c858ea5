"""Output for people at a terminal: rich tables and progress bars there, plain streamed text in scripts."""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from typing import Iterable, Iterator, TypeVar

# rich loads slowly: it is imported below only when the output really goes to a terminal, so a script or a
# pipe never pays for it.

T = TypeVar("T")
RICH_ROWS = 2000  # longer lists stream as plain lines: a rich table measures every row before it prints


def interactive(stream=None) -> bool:
    return (stream or sys.stdout).isatty()


def print_table(columns: tuple[str, ...], rows: Iterable[tuple[str, ...]], plain_lines, title: str = "",
                expected: int | None = None, numbers_from: int | None = None) -> None:
    """A rich table in a terminal (paged when longer than the screen); `plain_lines(rows)` otherwise."""
    if not interactive() or (expected is not None and expected > RICH_ROWS):
        sys.stdout.writelines(f"{line}\n" for line in plain_lines(rows))  # print() per line: twice the time
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, header_style="bold", show_lines=False)
    for number, column in enumerate(columns):
        table.add_column(column, justify="right" if numbers_from is not None and number >= numbers_from else "left")
    for row in rows:
        table.add_row(*row)
    console = Console()
    if table.row_count > console.height - 5:
        with console.pager(styles=True):
            console.print(table)
    else:
        console.print(table)


def progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """Yield `items`, with a progress bar on stderr when it is a terminal; silent in scripts."""
    if not interactive(sys.stderr):
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(task)


@contextmanager
def busy(what: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs, when stderr is a terminal; nothing in scripts."""
    status = _console_status(what) if interactive(sys.stderr) else nullcontext()
    with status:
        yield


def _console_status(what: str):
    from rich.console import Console

    return Console(stderr=True).status(what)
