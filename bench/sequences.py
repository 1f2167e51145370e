"""Pre-rendered frame sequences of the reference scenarios, and the order the benchmarks
walk them in.

Rendering is never timed: every sequence is drawn with Agg once, before any benchmark of
it runs. The walk goes forward then back (1, 2, ..., n-1, n-2, ..., 0, 1, ...) so that
every delta, wrap-around included, is between two frames rendered one step apart; a plain
cycle would add an unrepresentative jump from the last frame back to the first.
"""

import itertools

from fastfig import scenarios

SCENARIOS = ("line1", "line4", "heavy")
SIZES = ("640x480", "1920x1080")


def render(name, size, n):
    """n consecutive frames of a scenario, each its own (H, W, 4) uint8 array."""
    return scenarios.make(name, size).frames(n)


def cycle_length(n):
    """Deltas in one forward-and-back pass over n frames."""
    return 2 * (n - 1)


def walk(n):
    """Endless frame indices for deltas after a keyframe of frame 0."""
    if n < 2:
        raise ValueError("a delta needs at least two frames")
    return itertools.cycle([*range(1, n), *range(n - 2, -1, -1)])
