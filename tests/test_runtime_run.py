"""Runtime.run, the wait behind a blocking plt.show() and plt.pause() in a script: an
exception that leaves the loop mid-run (a signal handler's KeyboardInterrupt) leaves
nothing behind that would stop or end a later run early."""

import asyncio
import time

import pytest

from fastfig.mpl.runtime import Runtime


@pytest.fixture
def rt():
    r = Runtime()
    r.ensure_loop(mode="script")
    yield r
    r.loop.close()


def test_an_interrupt_after_the_stop_leaves_the_next_run_alone(rt):
    # The stop future is done (its callback queued), then an exception leaves the loop
    # before that callback runs: as SIGTERM under `fastfig serve` ending a plt.pause().
    def stop_then_interrupt():
        rt.stop()
        raise KeyboardInterrupt
    rt.loop.call_soon(stop_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        rt.run(timeout=5)
    # What fastfig serve's exit runs next; it failed with "Event loop stopped before
    # Future completed" when the old run's callback stopped this one.
    assert rt.loop.run_until_complete(asyncio.sleep(0.01, "done")) == "done"


def test_an_interrupted_pause_does_not_end_a_later_run_early(rt):
    rt.loop.call_soon(lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        rt.run(timeout=0.2)     # plt.pause(0.2) interrupted at once
    start = time.monotonic()
    rt.run(timeout=0.5)         # its 0.2 s timer must not end this one
    assert time.monotonic() - start >= 0.45   # not the stale 0.2 s
