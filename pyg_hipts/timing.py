"""Wall-clock timing for benchmarks and comparison reports, and training time budgets."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall time of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def max_time(minutes: float) -> str:
    """A training budget in Lightning's ``max_time`` format ``DD:HH:MM:SS`` (under one day)."""
    seconds = int(round(60 * minutes))
    if not 0 < seconds < 86400:
        raise ValueError(f"a budget must be between 1 s and 1 day, got {minutes} min")
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
