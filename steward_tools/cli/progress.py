"""Progress of long work on stderr: a tqdm bar (bytes, rate, ETA) on a terminal; elsewhere (CI,
a log file, a pipe) a plain line every few seconds and one at the end, never a `\\r`."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import click
from tqdm import tqdm

# Often enough to show a long copy is alive, rarely enough to keep a CI log readable.
LINE_INTERVAL_SECONDS = 5.0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover  (the loop returns)


def human_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Bytes done of a total that may grow as work is discovered."""

    def __init__(
        self,
        description: str,
        *,
        total: int = 0,
        stream: IO[str] | None = None,
        quiet: bool = False,
    ) -> None:
        self.description = description
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self._last_line = self.started
        self.bar: Any = None
        if not quiet and _is_terminal(self.stream):
            self.bar = tqdm(
                total=total or None,
                desc=description,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.stream,
                leave=False,
                dynamic_ncols=True,
            )

    def add_total(self, nbytes: int) -> None:
        self.total += nbytes
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def describe(self, description: str) -> None:
        self.description = description
        if self.bar is not None:
            self.bar.set_description(description)

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        if self.bar is not None:
            self.bar.update(nbytes)
            return
        now = time.monotonic()
        if not self.quiet and now - self._last_line >= LINE_INTERVAL_SECONDS:
            self._last_line = now
            self._line(self.status(now))

    def note(self, text: str) -> None:
        """A line of its own, above the bar."""
        if self.quiet:
            return
        if self.bar is not None:
            tqdm.write(text, file=self.stream)
        else:
            self._line(text)

    def status(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-6)
        rate = self.done / elapsed
        parts = [f"{self.description}: {human_bytes(self.done)}"]
        if self.total:
            parts[0] += f" of {human_bytes(self.total)} ({100 * self.done // self.total}%)"
        parts.append(f"{human_bytes(rate)}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {human_seconds((self.total - self.done) / rate)}")
        return ", ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif not self.quiet and self.done:
            elapsed = time.monotonic() - self.started
            self._line(
                f"{self.description}: {human_bytes(self.done)} in {elapsed:.1f}s "
                f"({human_bytes(self.done / max(elapsed, 1e-6))}/s)"
            )

    def _line(self, text: str) -> None:
        click.echo(text, file=self.stream)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.quiet = True  # a failure says so itself; no "done" line before it
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
