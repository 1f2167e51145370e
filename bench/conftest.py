"""Options and the frame-sequence fixture shared by the benchmarks.

The sequence fixture is module-scoped and parametrized per scenario and size, so pytest
runs every codec on one sequence before rendering the next, and holds one sequence at a
time (30 frames at 1920x1080 are 250 MB).
"""

from dataclasses import dataclass

import pytest

from . import sequences


def pytest_addoption(parser):
    group = parser.getgroup("fastfig bench")
    group.addoption("--bench-scenarios", default=",".join(sequences.SCENARIOS),
                    help="comma-separated reference scenarios (default: %(default)s)")
    group.addoption("--bench-sizes", default=",".join(sequences.SIZES),
                    help="comma-separated frame sizes (default: %(default)s)")
    group.addoption("--bench-frames", type=int, default=30,
                    help="frames rendered per sequence (default: %(default)s)")
    group.addoption("--bench-cycles", type=int, default=2,
                    help="forward-and-back passes over a sequence per codec benchmark; "
                         "each pass is 2*(frames-1) rounds (default: %(default)s)")


def _split(value):
    return [v.strip() for v in value.split(",") if v.strip()]


def pytest_generate_tests(metafunc):
    if "sequence" in metafunc.fixturenames:
        opt = metafunc.config.getoption
        cases = [(name, size) for name in _split(opt("--bench-scenarios"))
                 for size in _split(opt("--bench-sizes"))]
        metafunc.parametrize("sequence", cases, indirect=True, scope="module",
                             ids=[f"{name}-{size}" for name, size in cases])


@dataclass
class Sequence:
    scenario: str
    size: str
    frames: list
    rounds: int          # timed rounds of each codec benchmark

    @property
    def width(self):
        return self.frames[0].shape[1]

    @property
    def height(self):
        return self.frames[0].shape[0]

    def info(self, codec):
        """The extra_info every benchmark of this sequence starts from."""
        return {"codec": codec, "scenario": self.scenario, "size": self.size,
                "frames": len(self.frames), "rounds": self.rounds}


@pytest.fixture(scope="module")
def sequence(request):
    name, size = request.param
    n = request.config.getoption("--bench-frames")
    cycles = request.config.getoption("--bench-cycles")
    frames = sequences.render(name, size, n)
    return Sequence(name, size, frames, max(1, cycles) * sequences.cycle_length(n))
