"""A progress line with rate and ETA, for long loops (training, inference)."""

from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Prints ``label done/total ... rate/s ETA`` lines, at most every ``min_interval`` s."""

    def __init__(
        self,
        total: int,
        label: str = "step",
        unit: str = "steps",
        start: int = 0,
        stream=None,
        min_interval: float = 0.0,
    ):
        self.total = total
        self.label = label
        self.unit = unit
        self.start_count = start
        self.start_time = time.perf_counter()
        self.stream = stream if stream is not None else sys.stdout
        self.min_interval = min_interval
        self._last_print = -float("inf")

    def rate(self, done: int) -> float:
        elapsed = time.perf_counter() - self.start_time
        return (done - self.start_count) / elapsed if elapsed > 0 else 0.0

    def eta(self, done: int) -> float:
        r = self.rate(done)
        return (self.total - done) / r if r > 0 else float("nan")

    def line(self, done: int, **fields) -> str:
        parts = [f"{self.label} {done}/{self.total}"]
        for key, value in fields.items():
            parts.append(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}")
        r = self.rate(done)
        eta = self.eta(done)
        parts.append(f"{r:.2f} {self.unit}/s")
        parts.append("ETA " + (format_seconds(eta) if eta == eta else "?"))
        return "  ".join(parts)

    def update(self, done: int, force: bool = False, **fields) -> None:
        now = time.perf_counter()
        if force or done >= self.total or now - self._last_print >= self.min_interval:
            self._last_print = now
            print(self.line(done, **fields), file=self.stream, flush=True)
