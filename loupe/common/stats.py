"""Small statistics on counts, without scipy (the web process should not need it)."""

import math

# normal quantiles: a two-sided 95% interval, and a one-sided 95% bound (a 90% interval's end)
Z_95 = 1.959963984540054
Z_95_ONE_SIDED = 1.6448536269514722


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / n` (95% by default).

    Unlike the normal approximation it stays within 0..1 and is honest at the edges: 0 of 20 is
    not "0%, certainly" but at most about 16%. With n == 0 nothing is known: (0.0, 1.0).
    Raises ValueError on counts that are not 0 <= successes <= n.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # the exact edges: rounding must not push 0 of n above 0 or n of n below 1
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
