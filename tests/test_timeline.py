"""The timeline of a FuncAnimation served by the fastfig backend, driven by a real Client
over ZeroMQ: play, pause, step, seek, reverse, speed, repeat, a generator, the bounded
cache, and errors. Every frame checked is compared byte for byte with a plain Agg
render of that frame of the same animation."""

import time

import numpy as np
import pytest
from matplotlib.animation import ArtistAnimation, FuncAnimation

import fastfig
from backend_helpers import (Served, agg_render, drag_events, lines_figure,  # noqa: F401
                             rt, wait_for)
from fastfig.transport import protocol as P

SIZE = (320, 240)
N = 60


def update_for(x, lines):
    def update(i):
        lines[0].set_ydata(np.sin(x + 0.1 * i))
        return lines[:1]
    return update


def references(blit, n=N, view=None, size=SIZE, restyle=None):
    """Frame i of the animation rendered by plain Agg, in view (the first axes' limits)
    when given; with it, what the animation shows before its first frame (-1). A
    blitting animation's frame is its background (a full render without the animated
    line) with the line drawn over it, as matplotlib's blit draws it: over the axes'
    ticks and spines, which a full render draws over the line. restyle(lines): a change
    made to the figure before its frames are rendered."""
    fig, x, lines = lines_figure(*size)
    if restyle is not None:
        restyle(lines)
    update, line, ax = update_for(x, lines), lines[0], fig.axes[0]
    if view is not None:
        ax.set_xlim(view[0])
        ax.set_ylim(view[1])
    line.set_animated(blit)
    background = agg_render(fig)
    frames = []
    for i in range(n):
        update(i)
        if blit:
            canvas = fig.canvas
            buffer = np.asarray(canvas.buffer_rgba())
            np.copyto(buffer, background)
            ax.draw_artist(line)
            frames.append(buffer.copy())
        else:
            frames.append(agg_render(fig))
    return frames, background


REFERENCES = {blit: references(blit) for blit in (True, False)}


class Timeline(Served):
    """A served FuncAnimation and a Client on it, once its timeline is playing."""

    def __init__(self, rt, blit=True, frames=N, repeat=True, interval=10, credit=4):
        fig, x, lines = lines_figure(*SIZE)
        self.anim = rt.call(lambda: FuncAnimation(fig, update_for(x, lines), frames=frames,
                                                  interval=interval, blit=blit,
                                                  repeat=repeat))
        super().__init__(rt, fig, credit=credit)
        self.refs, background = REFERENCES[blit]
        self.index = {r.tobytes(): i for i, r in enumerate(self.refs)}
        self.index.setdefault(background.tobytes(), -1)
        rt.call(lambda: fastfig.animate(self.anim, block=False))
        self.state("timeline", lambda t: t is not None)

    @property
    def player(self):
        return self.canvas._timeline

    @property
    def source(self):
        return self.player.source

    def timeline(self, **expected):
        """Wait until the client's timeline state has the expected fields."""
        return self.state("timeline", lambda t: all(t[k] == v for k, v in expected.items()))

    def shows(self, index, timeout=10.0):
        """Wait until the client shows frame index, and check it stays there."""
        self.timeline(index=index)
        self.sees(self.refs[index], timeout)

    def sees(self, expected, timeout=10.0):
        """Wait until the client's image is expected (it may be there already: waiting
        for state reads frames too); while paused, check that it stays."""
        def there():
            self.client.next_frame(0.01)
            image = self.client.image
            return image is not None and np.array_equal(image, expected)
        wait_for(there, timeout)
        if not self.player.playing:
            assert np.array_equal(self.latest(0.1), expected)

    def played(self, n):
        """The indexes of the next n frames received; each must be an Agg render."""
        seen = []
        while len(seen) < n:
            image = self.frame()
            assert image.tobytes() in self.index, "a frame that no Agg render matches"
            seen.append(self.index[image.tobytes()])
        return seen

    def pause_after(self, n=6):
        """Play n frames, pause, and wait until the paused frame shows and the one
        before it is cached; returns the paused index."""
        self.played(n)
        self.client.timeline("pause")
        paused = self.timeline(playing=False)["index"]
        self.shows(paused)
        wait_for(lambda: paused - 1 in self.source.cache)
        return paused

    def sees_and_steps_back(self, refs, paused):
        """The client sees refs[paused], then, a step back, refs[paused - 1]."""
        self.sees(refs[paused])
        self.client.timeline("step", delta=-1)
        self.timeline(index=paused - 1)
        self.sees(refs[paused - 1])

    def counts(self):
        frames = self.canvas._frames
        return frames.frames, frames.renders, self.source.draws, self.source.restores

    def close(self):
        self.call(lambda: self.player and self.player.close())
        super().close()


@pytest.fixture(params=[True, False], ids=["blit", "full"])
def blit(request):
    return request.param


def test_play_pause_step_and_seek(rt, blit):
    t = Timeline(rt, blit)
    try:
        seen = t.played(12)
        forward = [i for i in seen if i >= 0]
        assert forward == sorted(forward) and forward[-1] >= 8
        state = t.client.timeline_state
        assert state["length"] == N and state["playing"] and state["interval"] == 10
        assert state["direction"] == 1 and state["speed"] == 1

        t.client.timeline("pause")
        paused = t.timeline(playing=False)["index"]
        t.shows(paused)
        before = t.counts()
        assert t.client.next_frame(timeout=0.5) is None, "a frame while paused"
        assert t.counts() == before, "a render while paused"
        wait_for(lambda: t.source.cache.run(paused) is not None)
        assert t.timeline(cached=[0, paused])

        restores = t.source.restores
        t.client.timeline("step", delta=-3)
        t.shows(paused - 3)
        t.client.timeline("step", delta=1)
        t.shows(paused - 2)
        assert t.source.restores == restores + 2   # seen frames come from the cache
        # ... kept as the packets the client was sent (FrameCache): restored exact above
        assert t.source.cache.shared > 0
        assert not t.client.timeline_state["playing"]

        draws = t.source.draws
        t.client.timeline("seek", index=1)          # seen
        t.shows(1)
        assert t.source.draws == draws
        t.client.timeline("seek", index=50)         # not seen yet: drawn
        t.shows(50)
        assert t.source.draws == draws + 1
        wait_for(lambda: 50 in t.source.cache)
        t.client.timeline("step", delta=-1)         # 49 was never drawn
        t.shows(49)
        t.client.timeline("seek", index=10**6)      # beyond the end: the last frame
        t.shows(N - 1)
    finally:
        t.close()


def test_the_animations_own_pause_and_stop_still_work(rt, blit):
    """Animation.pause()/resume() and event_source.stop()/start() after the timeline
    took the animation over: they pause and play it; a pause from the timeline bar is
    not undone by the timer starting again (a blitting animation restarts it after a
    resize)."""
    t = Timeline(rt, blit)
    try:
        t.played(4)
        t.call(t.anim.pause)
        paused = t.timeline(playing=False)["index"]
        t.shows(paused)
        before = t.counts()
        assert t.client.next_frame(timeout=0.5) is None, "a frame after Animation.pause()"
        assert t.counts() == before

        t.call(t.anim.resume)
        t.timeline(playing=True)
        assert [i for i in t.played(4) if i >= 0], "no frame after Animation.resume()"

        t.call(t.anim.event_source.stop)
        t.timeline(playing=False)
        t.call(t.anim.event_source.start)
        t.timeline(playing=True)
        t.played(2)

        t.client.timeline("pause")                   # the viewer's pause ...
        paused = t.timeline(playing=False)["index"]
        t.call(t.anim.event_source.stop)
        t.call(t.anim.event_source.start)            # ... outlasts the timer's restart
        t.shows(paused)
        assert not t.player.playing
        t.client.timeline("play")
        t.timeline(playing=True)
    finally:
        t.close()


def test_a_view_change_drops_the_cached_frames(rt, blit):
    """Panning while paused: the current frame is drawn again in the new view, and a
    step back draws its frame in that view, not the cached image of the old one."""
    t = Timeline(rt, blit)
    try:
        paused = t.pause_after(6)
        t.events(("toolbar", {"name": "pan"}), *drag_events([(100, 80), (120, 85), (130, 90)]))
        ax = t.fig.axes[0]
        view = t.call(lambda: (ax.get_xlim(), ax.get_ylim()))
        assert view != ((0, 4 * np.pi), (-1.2, 1.2))
        refs, _ = references(blit, paused + 1, view)
        t.sees_and_steps_back(refs, paused)
    finally:
        t.close()


def test_a_change_made_by_code_while_paused_drops_the_cached_frames(rt):
    """While paused, the user's code restyles the animated line (its colour, which the
    frame function leaves alone) and asks for a draw: the frame shows the change, and
    stepping back draws the earlier frame with it too, not the cached image from
    before (which a restore would write over the line's box)."""
    t = Timeline(rt, blit=False)
    try:
        paused = t.pause_after(6)

        def restyle(lines):
            lines[0].set_color("tab:red")

        def change():
            restyle([ax.lines[0] for ax in t.fig.axes])
            t.fig.canvas.draw_idle()
        t.call(change)
        refs, _ = references(False, paused + 1, restyle=restyle)
        t.sees_and_steps_back(refs, paused)
    finally:
        t.close()


def test_a_resize_draws_the_frames_at_the_new_size(rt, blit):
    t = Timeline(rt, blit)
    try:
        paused = t.pause_after(6)
        t.client.send_event("resize", width=400, height=300)
        refs, _ = references(blit, paused + 1, size=(400, 300))
        t.sees_and_steps_back(refs, paused)
        assert not t.player.playing
    finally:
        t.close()


def test_reverse_and_speed(rt, blit):
    t = Timeline(rt, blit, interval=20)
    try:
        t.played(3)
        t.client.timeline("pause")
        t.client.timeline("seek", index=40)
        t.shows(40)
        t.client.timeline("direction", direction=-1)
        t.client.timeline("speed", speed=2)
        t.client.timeline("play")
        t.timeline(direction=-1, speed=2, playing=True)
        seen = [i for i in t.played(8) if i <= 40]
        assert seen == sorted(seen, reverse=True) and seen[-1] < 40
        assert t.player.period == pytest.approx(0.01)
    finally:
        t.close()


def test_repeat_wraps_and_no_repeat_stops(rt):
    t = Timeline(rt, True, frames=20, repeat=True)
    try:
        t.client.timeline("seek", index=17)
        seen = t.played(8)
        assert 19 in seen and seen.index(19) < len(seen) - 1
        assert seen[seen.index(19) + 1] in (0, 1), "did not wrap to the start"
    finally:
        t.close()
    t = Timeline(rt, True, frames=10, repeat=False)
    try:
        t.timeline(index=9, playing=False)
        t.shows(9)
        t.client.timeline("step", delta=1)          # clamped at the end
        t.shows(9)
    finally:
        t.close()


def curves_figure(n):
    """line1's figure with n more curves in its first axes, for an ArtistAnimation whose
    frame i is curve i."""
    fig, x, _ = lines_figure(*SIZE)
    curves = [fig.axes[0].plot(x, np.cos(x + 0.3 * i), color="tab:orange")[0]
              for i in range(n)]
    return fig, curves


def curve_references(blit, n):
    """Frame i as matplotlib draws it: only curve i shown; with blit, drawn over the
    background (a render without any of them)."""
    fig, curves = curves_figure(n)
    for c in curves:
        c.set_visible(False)
        c.set_animated(blit)
    background = agg_render(fig)
    refs = []
    for c in curves:
        c.set_visible(True)
        if blit:
            buffer = np.asarray(fig.canvas.buffer_rgba())
            np.copyto(buffer, background)
            fig.axes[0].draw_artist(c)
            refs.append(buffer.copy())
        else:
            refs.append(agg_render(fig))
        c.set_visible(False)
    return refs


def test_an_artist_animation_gets_the_timeline(rt, blit):
    """An ArtistAnimation is taken over as a FuncAnimation is: its length is known, and
    paused, seeked and stepped frames equal matplotlib's own, seen ones from the cache."""
    n = 12
    fig, curves = curves_figure(n)
    anim = rt.call(lambda: ArtistAnimation(fig, [[c] for c in curves], interval=10,
                                           blit=blit))
    t = Served(rt, fig)
    refs = curve_references(blit, n)

    def sees(expected):
        def there():
            t.client.next_frame(0.01)
            return t.client.image is not None and np.array_equal(t.client.image, expected)
        wait_for(there)

    try:
        rt.call(lambda: fastfig.animate(anim, block=False))
        assert t.state("timeline", lambda s: s is not None)["length"] == n
        t.state("timeline", lambda s: s["index"] >= 6)
        t.client.timeline("pause")
        paused = t.state("timeline", lambda s: not s["playing"])["index"]
        sees(refs[paused])
        player = t.canvas._timeline
        wait_for(lambda: paused - 1 in player.source.cache)
        restores = player.source.restores
        t.client.timeline("step", delta=-1)
        t.state("timeline", lambda s: s["index"] == paused - 1)
        sees(refs[paused - 1])
        assert player.source.restores == restores + 1
        t.client.timeline("seek", index=n - 1)
        t.state("timeline", lambda s: s["index"] == n - 1)
        sees(refs[n - 1])
    finally:
        t.call(lambda: t.canvas._timeline and t.canvas._timeline.close())
        t.close()


def test_generator_length_becomes_known(rt):
    fig, x, lines = lines_figure(*SIZE)
    update = update_for(x, lines)

    def frames():
        yield from range(15)

    anim = rt.call(lambda: FuncAnimation(fig, update, frames=frames, interval=10, blit=True,
                                         repeat=True, save_count=15))
    t = Served(rt, fig)
    try:
        rt.call(lambda: fastfig.animate(anim, block=False))
        first = t.state("timeline", lambda s: s is not None)
        assert first["length"] is None
        assert t.state("timeline", lambda s: s["length"] == 15)["length"] == 15
        t.client.timeline("pause")
        paused = t.state("timeline", lambda s: not s["playing"])["index"]
        image = t.latest(0.2)
        assert np.array_equal(image, REFERENCES[True][0][paused])
        t.client.timeline("seek", index=(paused + 5) % 15)   # seen in the first run
        t.state("timeline", lambda s: s["index"] == (paused + 5) % 15)
        assert np.array_equal(t.latest(0.2), REFERENCES[True][0][(paused + 5) % 15])
    finally:
        rt.call(lambda: fig.canvas._timeline.close())
        t.close()


def test_cache_stays_bounded_and_evicted_frames_are_drawn_again(rt):
    t = Timeline(rt, True, frames=30, interval=5)
    try:
        t.played(1)
        cache = t.source.cache
        base = SIZE[0] * SIZE[1] * 4     # the cache's base image, kept raw
        wait_for(lambda: len(cache) >= 2)
        per_frame = max((cache.nbytes - base) // len(cache), 1)
        cache.max_bytes = base + 5 * per_frame
        t.client.timeline("seek", index=0)
        t.state("timeline", lambda s: s["index"] >= 20)
        t.client.timeline("pause")
        paused = t.timeline(playing=False)["index"]
        t.shows(paused)
        assert cache.nbytes <= cache.max_bytes and cache.evicted > 0
        assert 2 not in cache
        draws = t.source.draws
        t.client.timeline("seek", index=2)
        t.shows(2)
        assert t.source.draws == draws + 1
    finally:
        t.close()


def test_evicted_generator_frames_are_unavailable(rt):
    fig, x, lines = lines_figure(*SIZE)

    def frames():
        yield from range(10**6)

    anim = rt.call(lambda: FuncAnimation(fig, update_for(x, lines), frames=frames,
                                         interval=5, blit=True, save_count=10))
    t = Served(rt, fig)
    try:
        rt.call(lambda: fastfig.animate(anim, block=False))
        t.state("timeline", lambda s: s is not None and s["index"] >= 1)
        cache = fig.canvas._timeline.source.cache
        base = SIZE[0] * SIZE[1] * 4
        wait_for(lambda: len(cache) >= 2)
        cache.max_bytes = base + 3 * (cache.nbytes - base) // len(cache)
        t.state("timeline", lambda s: s["index"] >= 10)
        t.client.timeline("pause")
        t.state("timeline", lambda s: not s["playing"])
        t.client.timeline("seek", index=1)
        wait_for(lambda: t.client.next_frame(0.05) is None and t.client.last_error is not None)
        assert t.client.last_error.code == P.E_UNAVAILABLE
        assert "frame 1 is not available" in str(t.client.last_error)
        assert "generator" in str(t.client.last_error)
    finally:
        rt.call(lambda: fig.canvas._timeline.close())
        t.close()


def test_nobody_reading_means_no_renders(rt):
    t = Timeline(rt, True, interval=1, credit=1)
    try:
        t.played(2)
        draws = t.source.draws
        time.sleep(0.5)   # the client reads nothing meanwhile: the absence is the point
        assert t.source.draws - draws <= 2
        t.played(3)       # reading again: it plays on
    finally:
        t.close()


def test_malformed_timeline_events_get_an_error_and_serving_goes_on(rt):
    t = Timeline(rt, True)
    try:
        t.client.timeline("pause")
        t.timeline(playing=False)
        for event in ({"type": "timeline", "action": "rewind"},
                      {"type": "timeline", "action": "step", "delta": 0},
                      {"type": "timeline", "action": "seek", "index": -4},
                      {"type": "timeline", "action": "speed", "speed": float("1e9")}):
            t.client.last_error = None
            assert t.client._request(P.EVENT, figure=t.client.figure, event=event)
            wait_for(lambda: t.client.next_frame(0.02) is None and t.client.last_error)
            assert t.client.last_error.code == P.E_INVALID_EVENT
            assert "invalid event" in str(t.client.last_error)
        t.client.timeline("seek", index=30)
        t.shows(30)
    finally:
        t.close()


def test_a_figure_without_animation_answers_with_an_error(rt):
    fig, _, _ = lines_figure(*SIZE)
    s = Served(rt, fig)
    try:
        s.frame()
        s.client.timeline("play")
        wait_for(lambda: s.client.next_frame(0.02) is None and s.client.last_error)
        assert s.client.last_error.code == P.E_NO_TIMELINE
        assert "has no timeline" in str(s.client.last_error)
        assert s.client.timeline_state is None
        assert s.client.download("png")[:4] == b"\x89PNG"    # still serving
    finally:
        s.close()


def test_known_frames_reads_the_frame_sequence():
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from fastfig.mpl.animation import known_frames

    def anim(frames, **kwargs):
        fig = Figure()
        FigureCanvasAgg(fig)
        made = FuncAnimation(fig, lambda i: [], frames=frames, cache_frame_data=False,
                             **kwargs)
        made._draw_was_started = True   # no "deleted without rendering" warning
        return made

    data = np.arange(6) * 2.0
    assert known_frames(anim(7)) == range(7)
    assert known_frames(anim(7, repeat=False)) == range(7)
    assert known_frames(anim([3, 1, 2])) == [3, 1, 2]
    assert known_frames(anim((3, 1), repeat=False)) == (3, 1)
    assert known_frames(anim(data)) is data
    assert known_frames(anim({"a", "b"})) is not None and len(known_frames(anim({"a"}))) == 1
    assert known_frames(anim(None)) is None
    assert known_frames(anim(lambda: iter(range(3)))) is None
    assert known_frames(anim(iter([1, 2, 3]))) is None
    assert known_frames(anim(iter([1, 2, 3]), repeat=False)) is None
