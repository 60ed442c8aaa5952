"""How often Python looks for reference cycles in an audit's processes.

An audit makes a few small objects per file listed and per record (a hundred thousand records a night
at 100k prefixes), almost none of them in cycles, and each survives a bundle; with the default first
threshold (a collection every 700 allocations) the cycle collector passes over them again and again.
A threshold of 20,000 measured 10.3 -> 9.8 s for the carried night in one process at 100k prefixes,
the same as no collector at all, at the same peak RSS (BENCHMARKS.md, 2026-12-07). Cycles are still
collected, less often.
"""

import gc

FIRST_GENERATION_THRESHOLD = 20_000


def collect_less() -> None:
    """Raise the collector's first threshold in this process (a worker's or the launcher's); never lower it."""
    first, second, third = gc.get_threshold()
    if first < FIRST_GENERATION_THRESHOLD:
        gc.set_threshold(FIRST_GENERATION_THRESHOLD, second, third)
