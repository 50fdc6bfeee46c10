"""The one retry delay of the project: exponential backoff with jitter. No Django.

Used by the PNM tasks (full jitter, capped), the seismograph tasks (half jitter) and the
ingester's forwarder (no jitter): the jitter spreads the retries of many devices apart.
"""

from __future__ import annotations

import math
import random

_random = random.SystemRandom()  # spreads retries; not security-relevant


def backoff_s(
    attempt: int, base_s: float, maximum_s: float = math.inf, *, jitter: float = 1.0
) -> float:
    """The delay before retry number ``attempt`` (0-based), in seconds.

    The ceiling doubles per attempt, ``min(maximum_s, base_s * 2**attempt)``; the delay is
    drawn uniformly from its top ``jitter`` fraction (1.0: anywhere from 0, 0.0: exactly the
    ceiling).
    """
    ceiling = min(maximum_s, base_s * 2.0**attempt)
    return ceiling - _random.uniform(0, ceiling * jitter)
