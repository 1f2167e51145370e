"""The timeline Player without a figure or sockets: a fake source, a loop whose clock the
test moves, and a ready() the test releases (a frame that has not gone out yet). Also
the FrameCache on its own, and the protocol's timeline event and state validation."""

import heapq

import pytest

import numpy as np

from fastfig.errors import ProtocolError
from fastfig.codec.encoder import FrameEncoder
from fastfig.timeline.cache import FrameCache
from fastfig.timeline.player import Player
from fastfig.transport import protocol as P


class FakeLoop:
    """call_at/time with a clock that moves only when the test says."""

    def __init__(self):
        self.now = 0.0
        self._timers = []
        self._n = 0

    def time(self):
        return self.now

    def call_at(self, when, fn, *args):
        handle = _Handle()
        self._n += 1
        heapq.heappush(self._timers, (when, self._n, handle, fn, args))
        return handle

    def advance(self, seconds):
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, handle, fn, args = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not handle.cancelled:
                fn(*args)
        self.now = end

    @property
    def pending(self):
        return sum(not t[2].cancelled for t in self._timers)


class _Handle:
    cancelled = False

    def cancel(self):
        self.cancelled = True


class FakeSource:
    """frames: a known length, or None for a generator that ends after `ends` frames."""

    def __init__(self, length=10, interval=0.1, ends=None):
        self.length = length
        self.interval = interval
        self.ends = ends
        self.shown = []

    def show(self, index):
        end = self.length if self.length is not None else self.ends
        if index < 0 or (end is not None and index >= end):
            if self.length is None and end is not None:
                self.length = end   # the generator ran out: its length is known now
            return False
        self.shown.append(index)
        return True

    def cached(self):
        return (min(self.shown), max(self.shown)) if self.shown else None


class Gate:
    """ready(): holds callbacks until the test releases them (nobody took the frame)."""

    def __init__(self, open=True):
        self.open = open
        self.waiting = []

    def __call__(self, cb):
        if self.open:
            cb()
        else:
            self.waiting.append(cb)

    def release(self):
        waiting, self.waiting = self.waiting, []
        for cb in waiting:
            cb()


def make(length=10, repeat=True, ready=None, **source):
    loop, states = FakeLoop(), []
    src = FakeSource(length, **source)
    player = Player(src, states.append, loop, repeat=repeat, ready=ready)
    return player, src, loop, states


def test_plays_at_the_interval_and_publishes_each_change():
    player, src, loop, states = make()
    player.start()
    assert src.shown == [0] and states[-1]["index"] == 0 and states[-1]["playing"]
    loop.advance(0.35)
    assert src.shown == [0, 1, 2, 3]
    assert [s["index"] for s in states] == [0, 1, 2, 3]
    assert states[-1] == {"index": 3, "length": 10, "playing": True, "direction": 1,
                          "speed": 1.0, "interval": 100.0, "cached": [0, 3]}
    for s in states:
        P.check_state({"timeline": s})


def test_pause_stops_frames_and_play_resumes():
    player, src, loop, states = make()
    player.start()
    loop.advance(0.1)
    player.pause()
    assert states[-1]["playing"] is False and loop.pending == 0
    loop.advance(5)
    assert src.shown == [0, 1]
    player.play()
    loop.advance(0.1)
    assert src.shown == [0, 1, 2] and states[-1]["playing"]


def test_step_pauses_and_moves():
    player, src, loop, states = make(repeat=False)
    player.start()
    assert player.step(3) and player.index == 3 and not player.playing
    assert player.step(-1) and player.index == 2
    assert player.step(-100) and player.index == 0    # clamped without repeat
    assert player.step(100) and player.index == 9
    loop.advance(5)
    assert src.shown == [0, 3, 2, 0, 9]


def test_step_wraps_when_repeating():
    player, src, loop, states = make(repeat=True)
    player.start(playing=False)
    assert player.step(-1) and player.index == 9
    assert player.step(2) and player.index == 1


def test_seek_keeps_playing_or_paused():
    player, src, loop, states = make()
    player.start()
    assert player.seek(7) and player.playing and player.index == 7
    loop.advance(0.1)
    assert player.index == 8
    player.pause()
    assert player.seek(2) and not player.playing
    assert player.seek(1000) and player.index == 9     # beyond a known end: the last
    loop.advance(1)
    assert src.shown[-2:] == [2, 9]


def test_speed_changes_the_rate():
    player, src, loop, states = make()
    player.start()
    player.set_speed(4)
    loop.advance(0.1)
    assert src.shown == [0, 1, 2, 3, 4]
    assert states[-1]["speed"] == 4
    player.set_speed(0.5)
    loop.advance(0.19)
    assert src.shown == [0, 1, 2, 3, 4]
    loop.advance(0.02)
    assert src.shown[-1] == 5


def test_reverse_plays_backwards_and_wraps():
    player, src, loop, states = make(repeat=True)
    player.start(playing=False, index=2)
    player.set_direction(-1)
    player.play()
    loop.advance(0.45)
    assert src.shown == [2, 1, 0, 9, 8]
    assert states[-1]["direction"] == -1


def test_repeat_wraps_forward_and_no_repeat_stops_at_the_end():
    player, src, loop, _ = make(length=3, repeat=True)
    player.start()
    loop.advance(0.45)
    assert src.shown == [0, 1, 2, 0, 1]
    player, src, loop, states = make(length=3, repeat=False)
    player.start()
    loop.advance(1)
    assert src.shown == [0, 1, 2] and not player.playing and states[-1]["playing"] is False
    player.play()   # at the end: starts over
    loop.advance(0.1)
    assert src.shown == [0, 1, 2, 0, 1]


def test_generator_length_becomes_known_when_it_runs_out():
    player, src, loop, states = make(length=None, ends=4, repeat=True)
    player.start()
    assert states[-1]["length"] is None
    loop.advance(0.45)
    assert src.shown == [0, 1, 2, 3, 0]
    assert states[-1]["length"] == 4 and player.playing


def test_generator_frames_far_ahead_are_unavailable():
    player, src, loop, _ = make(length=None)
    player.start(playing=False)
    assert player.seek(10**6) is False and player.index == 0
    reason = player.handle({"type": "timeline", "action": "seek", "index": 10**6})
    assert "not available" in reason and "generator" in reason


def test_waits_for_the_previous_frame_to_go_out():
    """No consumer took the last frame: the timer does not make another one."""
    gate = Gate(open=False)
    player, src, loop, states = make(ready=gate)
    player.start()
    loop.advance(1.0)
    assert src.shown == [0] and len(gate.waiting) == 1   # one tick waits, no more
    gate.release()
    assert src.shown == [0, 1]
    gate.open = True
    loop.advance(0.01)           # late: the next frame is due now, one frame, no burst
    assert src.shown == [0, 1, 2]
    loop.advance(0.08)
    assert src.shown == [0, 1, 2]
    loop.advance(0.02)
    assert src.shown == [0, 1, 2, 3]


def test_pause_while_waiting_drops_the_waiting_tick():
    gate = Gate(open=False)
    player, src, loop, _ = make(ready=gate)
    player.start()
    loop.advance(0.1)
    player.pause()
    gate.release()
    assert src.shown == [0]


def test_handle_applies_events():
    player, src, loop, states = make()
    player.start(playing=False)
    for event, check in [({"action": "play"}, lambda: player.playing),
                         ({"action": "pause"}, lambda: not player.playing),
                         ({"action": "step", "delta": 2}, lambda: player.index == 2),
                         ({"action": "seek", "index": 5}, lambda: player.index == 5),
                         ({"action": "speed", "speed": 2.5}, lambda: player.speed == 2.5),
                         ({"action": "direction", "direction": -1},
                          lambda: player.direction == -1)]:
        clean = P.check_event({"type": "timeline", **event})
        assert player.handle(clean) is None and check()


def test_no_state_message_without_a_change():
    player, src, loop, states = make()
    player.start(playing=False)
    n = len(states)
    player.pause()
    player.set_direction(1)
    player.set_speed(1)
    assert len(states) == n


# -- the cache ------------------------------------------------------------------------------

def frames_moving_in_a_box(n, w=200, h=120):
    """A noisy background with a square that moves inside one region, as a blitting
    animation draws: frame i differs from frame 0 inside (20..140, 10..90) only."""
    rng = np.random.default_rng(3)
    background = rng.integers(0, 256, (h, w, 4), np.uint8)
    out = []
    for i in range(n):
        img = background.copy()
        img[10 + i % 60:30 + i % 60, 20 + 2 * i % 100:40 + 2 * i % 100] = (i * 40) % 256
        out.append(img)
    return out


def test_cache_restores_any_frame_over_any_other_byte_for_byte():
    frames = frames_moving_in_a_box(12)
    cache = FrameCache()
    boxes = [cache.put(i, f) for i, f in enumerate(frames)]
    assert boxes[0] == (0, 0, 0, 0)                 # the base itself
    assert all(b[2] * b[3] <= 40 * 40 for b in boxes[1:])
    canvas, shown, prev = frames[11].copy(), boxes[11], 11
    for i in [3, 0, 7, 7, 11, 1, 5]:
        box, changed = cache.restore(i, canvas, shown)
        assert np.array_equal(canvas, frames[i])
        # Outside what it says changed, the image is the one shown before.
        mask = np.ones(canvas.shape[:2], bool)
        x, y, w, h = changed
        mask[y:y + h, x:x + w] = False
        assert np.array_equal(canvas[mask], frames[prev][mask])
        prev, shown = i, box
    canvas = np.zeros_like(frames[0])
    box, changed = cache.restore(4, canvas, None)   # over an unknown image: all of it
    assert changed is None and np.array_equal(canvas, frames[4])


def frames_drawn_whole(n, h=120, w=200):
    """Frames of an animation drawn whole: a noisy field inside (30..130, 20..100) new
    every frame, and a marker at (5, 5) in frame 0 only, as a scatter point that
    leaves the axes' edge. Frame i differs from frame i-1 inside the field (and at the
    marker for i == 1), from frame 0 inside the field and at the marker."""
    rng = np.random.default_rng(5)
    background = np.full((h, w, 4), 255, np.uint8)
    out = []
    for i in range(n):
        img = background.copy()
        img[20:100, 30:130] = rng.integers(0, 8, (80, 100, 4), np.uint8) * 30
        if i == 0:
            img[5:8, 5:8] = (255, 0, 0, 255)
        out.append(img)
    return out


def test_cache_keeps_the_viewers_packet_when_it_covers_the_frame():
    """A frame drawn whole is kept as the packet its viewers were sent, not encoded
    again; where that packet misses a pixel that differs from the base (the marker
    after frame 1), a keyframe of the missed box is kept with it. Every frame restores
    byte for byte over any other."""
    frames = frames_drawn_whole(10)
    encoder = FrameEncoder(200, 120)
    cache, own = FrameCache(), FrameCache()
    boxes = []
    for i, f in enumerate(frames):
        packet = bytes(encoder.encode(f))
        boxes.append(cache.put(i, f, packet=packet))
        own.put(i, f)
    assert cache.shared == 9 and own.shared == 0      # all but the base (frame 0)
    assert boxes[0] == (0, 0, 0, 0)
    assert len(cache._entries[1][1]) == 1             # the delta covers the marker
    assert all(len(cache._entries[i][1]) == 2 for i in range(2, 10))   # + the marker box
    canvas, shown = frames[9].copy(), boxes[9]
    for i in [2, 0, 7, 1, 1, 9, 4]:
        box, changed = cache.restore(i, canvas, shown)
        assert np.array_equal(canvas, frames[i])
        shown = box


def test_cache_encodes_frames_that_no_packet_fits():
    """A packet of another size, a corrupt one, a keyframe far larger than the change,
    or a blitting delta that misses most of what differs from the base: the frame is
    encoded as its box, as without a packet."""
    frames = frames_drawn_whole(3)
    cache = FrameCache()
    cache.put(0, frames[0])
    other = FrameEncoder(60, 40)
    assert cache.put(1, frames[1], packet=bytes(other.encode(frames[1][:40, :60]))) is not None
    bad = bytearray(bytes(FrameEncoder(200, 120).encode(frames[2])))
    bad[:4] = b"nope"
    cache.put(2, frames[2], packet=bytes(bad))
    assert cache.shared == 0
    moving = frames_moving_in_a_box(8)
    blit, encoder = FrameCache(), FrameEncoder(200, 120)
    for i, f in enumerate(moving):
        blit.put(i, f, packet=bytes(encoder.encode(f)))
    # Frame 1's delta holds both squares (where frame 0's was and where its own is);
    # later deltas miss frame 0's square.
    assert blit.shared == 1
    for c, fs in ((cache, frames), (blit, moving)):
        for i in range(len(fs)):
            canvas = np.zeros_like(fs[0])
            c.restore(i, canvas)
            assert np.array_equal(canvas, fs[i])


def test_cache_scan_box_limits_the_search_and_bounds_hold():
    frames = frames_moving_in_a_box(30)
    probe = FrameCache()
    for i, f in enumerate(frames):
        probe.put(i, f)
    base = frames[0].nbytes
    cache = FrameCache(max_bytes=base + 5 * (probe.nbytes - base) // 30)
    for i, f in enumerate(frames):
        cache.put(i, f, scan=(0, 0, 200, 120), playhead=i)
        assert cache.nbytes <= cache.max_bytes
    assert cache.evicted > 0 and 29 in cache and 0 not in cache
    first, last = cache.run(29)
    assert last == 29 and all(k in cache for k in range(first, 30))
    assert cache.run(0) is None
    # The frames farthest from the playhead go first.
    kept = set(range(first, 30))
    for i in range(5):
        cache.put(i, frames[i], playhead=0)
    gone = {k for k in kept if k not in cache}
    assert gone and all(k in cache for k in range(5))
    assert min(gone) > max(kept - gone)


def test_cache_of_another_size_starts_over_and_a_zero_bound_keeps_nothing():
    cache = FrameCache()
    frames = frames_moving_in_a_box(3)
    cache.put(0, frames[0])
    cache.put(1, frames[1])
    cache.put(2, np.zeros((50, 60, 4), np.uint8))
    assert len(cache) == 1 and 0 not in cache
    assert cache.restore(2, np.zeros_like(frames[0])) is None
    off = FrameCache(max_bytes=0)
    assert off.put(0, frames[0]) is None and len(off) == 0 and off.nbytes == 0


# -- protocol ------------------------------------------------------------------------------

@pytest.mark.parametrize("event", [
    {"action": "play"}, {"action": "pause"}, {"action": "step", "delta": -1},
    {"action": "step", "delta": 1000}, {"action": "seek", "index": 0},
    {"action": "seek", "index": 2**31}, {"action": "speed", "speed": 0.05},
    {"action": "speed", "speed": 20}, {"action": "direction", "direction": -1}])
def test_valid_timeline_events(event):
    assert P.check_event({"type": "timeline", **event}) == {"type": "timeline", **event}


@pytest.mark.parametrize("event, words", [
    ({}, "missing field 'action'"), ({"action": "rewind"}, "'rewind' is not one of"),
    ({"action": "step"}, "missing field 'delta'"),
    ({"action": "step", "delta": 0}, "must not be 0"),
    ({"action": "step", "delta": 1001}, "outside"),
    ({"action": "step", "delta": 1.5}, "integer"),
    ({"action": "seek", "index": -1}, "outside"),
    ({"action": "seek", "index": True}, "integer"),
    ({"action": "speed", "speed": 0}, "outside"),
    ({"action": "speed", "speed": "fast"}, "number"),
    ({"action": "direction", "direction": 0}, "1 or -1"),
    ({"action": "direction", "direction": 2}, "outside")])
def test_invalid_timeline_events(event, words):
    with pytest.raises(ProtocolError, match="invalid event") as e:
        P.check_event({"type": "timeline", **event})
    assert words in str(e.value) and e.value.code == P.E_INVALID_EVENT


GOOD_STATE = {"index": 3, "length": 60, "playing": True, "direction": 1, "speed": 1,
              "interval": 40, "cached": [0, 3]}


@pytest.mark.parametrize("change", [
    {"index": -1}, {"length": -2}, {"playing": 1}, {"direction": 0}, {"speed": 100},
    {"interval": -1}, {"cached": [3, 0]}, {"cached": [0]}, {"cached": "all"}])
def test_invalid_timeline_state(change):
    with pytest.raises(ProtocolError):
        P.check_state({"timeline": {**GOOD_STATE, **change}})


def test_timeline_state_passes_and_unknown_length_is_null():
    assert P.check_state({"timeline": GOOD_STATE}) == {"timeline": GOOD_STATE}
    state = dict(GOOD_STATE, length=None, cached=None)
    assert P.check_state({"timeline": state}) == {"timeline": state}
    with pytest.raises(ProtocolError, match="lacks"):
        P.check_state({"timeline": {"index": 0}})
