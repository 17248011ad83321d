"""The sandbox's clock: real time, in the unit Meta's webhooks use."""

import time


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of webhook timestamps."""
    return time.time_ns() // 1_000_000
