"""Percentiles from log-spaced bins: within the stated error of the exact values, and the same
whether a range's bins were counted at once or added up from its buckets."""

import math
import random

import pytest

from monitoring import histograms


def _nearest_rank(values, q):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_the_bin_error_of_the_exact_ones(seed):
    rng = random.Random(seed)
    values = [rng.lognormvariate(math.log(80), 0.9) + 1 for _ in range(5000)]
    counts = histograms.of(values)
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = _nearest_rank(values, q)
        got = histograms.percentile(counts, q)
        assert abs(got - exact) / exact <= histograms.MAX_RELATIVE_ERROR + 1e-9, (q, got, exact)


def test_added_buckets_give_the_histogram_of_all_their_values():
    rng = random.Random(7)
    parts = [[rng.uniform(1, 5000) for _ in range(300)] for _ in range(5)]
    summed = {}
    for part in parts:
        histograms.add(summed, histograms.stored(histograms.of(part)))
    assert summed == histograms.of([v for part in parts for v in part])


def test_the_bins_and_their_error():
    assert round(histograms.MAX_RELATIVE_ERROR, 4) == 0.0593
    assert histograms.bin_of(0.2) == 0
    assert histograms.bin_of(1) == 1
    assert histograms.bin_of(10) == 1 + histograms.BINS_PER_DECADE
    assert histograms.bin_of(10**12) == histograms.LAST_BIN
    assert histograms.percentile({}, 0.5) is None
    assert histograms.percentile({"0": 3}, 0.5) == 0.5
