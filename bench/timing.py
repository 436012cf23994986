"""What the benchmark scripts share: timing the fastest of several runs."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(repeat: int, work: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of the fastest of `repeat` runs, and the work's last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result
