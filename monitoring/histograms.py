"""Latency histograms that add up: fixed log-spaced bins, so the percentiles of any range are
computed from the summed counts of its buckets (percentiles themselves cannot be averaged).

Bin 0 holds values under 1 ms; bin i >= 1 holds [R**(i-1), R**i) ms with R = 10**(1/20),
twenty bins a decade, up to 10**8 ms (about 28 hours), where the last bin takes everything
longer. A percentile is reported as its bin's geometric middle, so it is within
MAX_RELATIVE_ERROR (5.9%) of the exact nearest-rank value (for values between 1 ms and the
last bin). Stored as JSON objects of the non-empty bins, {"41": 12, ...}: a minute of one
line's items fills a handful of bins.
"""

import math
from collections.abc import Iterable, Mapping

BINS_PER_DECADE = 20
RATIO = 10 ** (1 / BINS_PER_DECADE)
MAX_RELATIVE_ERROR = math.sqrt(RATIO) - 1
LAST_BIN = 8 * BINS_PER_DECADE + 1  # from 10**8 ms up

Histogram = dict[int, int]


def bin_of(ms: float) -> int:
    if ms < 1:
        return 0
    return min(LAST_BIN, 1 + int(math.floor(math.log10(ms) * BINS_PER_DECADE)))


def value_of(index: int) -> float:
    """The value a bin stands for: its geometric middle (the lower edge of the last bin)."""
    if index <= 0:
        return 0.5
    if index >= LAST_BIN:
        return 10.0**8
    return RATIO ** (index - 0.5)


def of(values_ms: Iterable[float]) -> Histogram:
    counts: Histogram = {}
    for value in values_ms:
        index = bin_of(value)
        counts[index] = counts.get(index, 0) + 1
    return counts


def add(into: Histogram, other: Mapping) -> Histogram:
    """Add `other` (in memory, or as stored: string keys) into `into`; return `into`."""
    for index, count in other.items():
        index = int(index)
        into[index] = into.get(index, 0) + count
    return into


def stored(counts: Histogram) -> dict[str, int]:
    return {str(index): count for index, count in sorted(counts.items())}


def percentile(counts: Mapping, q: float) -> float | None:
    """The nearest-rank q-quantile (0 < q <= 1) in ms, None for an empty histogram."""
    bins = sorted((int(index), count) for index, count in counts.items() if count)
    total = sum(count for _, count in bins)
    if not total:
        return None
    # the small tolerance keeps 0.95 * 100 at rank 95, not 96
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for index, count in bins:
        seen += count
        if seen >= rank:
            return value_of(index)
    return value_of(bins[-1][0])
