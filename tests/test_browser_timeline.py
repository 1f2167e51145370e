"""The timeline bar and the close button of the viewer, in a real headless Chromium.

The bar against a figure whose timeline state the test sets itself (what the page sends
for each control, keys only while the bar has the focus, while scrubbing at most one seek
per display frame and one at a time, the newest); then end to end, against a matplotlib
FuncAnimation served by the fastfig backend: pause stops the canvas, a step back shows the
previous frame's pixels exactly (compared with a plain Agg render of that frame), the
scrubber seeks. A figure without an animation has no bar; the close button closes the
figure, a blocking show() returns, and the script's next figure shows in the same page.
"""

import json
import queue
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from matplotlib.animation import FuncAnimation

import fastfig
from backend_helpers import lines_figure, rt, wait_for  # noqa: F401 (rt is a fixture)
from browser_helpers import (canvas_rgba, checked_page, missing, served_viewer, viewer_value,
                             wait_viewer)
from test_timeline import N, REFERENCES, SIZE, update_for

REASON = missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser tests: {REASON}")
TIMEOUT = 10000
WATCHED = ("timeline", "key_press", "key_release")


@pytest.fixture
def page(browser):
    yield from checked_page(browser, 1000, 800, TIMEOUT)


@pytest.fixture
def served():
    yield from served_viewer()


def timeline_state(**fields):
    state = {"index": 0, "length": 100, "playing": True, "direction": 1, "speed": 1,
             "interval": 40, "cached": [0, 0]}
    state.update(fields)
    return state


class Bar:
    """A figure "anim" in the page, its timeline state set by the test, the events the
    page sends for it collected. echo: answer each seek as a Player does (the state's
    index becomes the frame asked for)."""

    def __init__(self, served, page, echo=True, **fields):
        server, bridge = served
        self.page = page
        self.stream = server.add_figure("anim", 320, 240)
        self.events = queue.Queue()
        self.fields = fields

        def received(event):
            self.events.put(event)
            if echo and event["type"] == "timeline" and event["action"] == "seek":
                self.fields["index"] = event["index"]
                self.stream.set_state(timeline=timeline_state(**self.fields))
        self.stream.on_event(received)
        self.stream.set_state(timeline=timeline_state(**fields))
        self.stream.publish(np.full((240, 320, 4), 255, np.uint8))
        page.goto(bridge.figure_url("anim") + "&fit=0")
        wait_viewer(page, "anim", "v.painted > 0 && v.timeline.shown")
        self.root = page.locator('section[data-figure="anim"] .ff-timeline')

    def set(self, **fields):
        self.fields = fields
        self.stream.set_state(timeline=timeline_state(**fields))
        checks = " && ".join(f"v.timeline.state.{k} === {json.dumps(v)}" for k, v in fields.items()
                             if not isinstance(v, list))
        wait_viewer(self.page, "anim", checks or "true")

    def button(self, action):
        return self.root.locator(f'[data-timeline="{action}"]')

    def next_event(self, timeout=10):
        """The next timeline or key event (the pointer's enter, leave, moves skipped)."""
        while True:
            e = self.events.get(timeout=timeout)
            if e["type"] in WATCHED:
                return e

    def drain(self):
        out = []
        while True:
            try:
                e = self.events.get_nowait()
            except queue.Empty:
                return out
            if e["type"] in WATCHED:
                out.append(e)

    def timeline_events(self):
        return [e for e in self.drain() if e["type"] == "timeline"]


def strip(event):
    return {k: v for k, v in event.items() if k not in ("figure", "client")}


def test_controls_send_the_timeline_events(served, page):
    bar = Bar(served, page, index=7, length=100, playing=True, cached=[0, 49])
    assert bar.root.is_visible()
    assert bar.root.locator(".ff-tl-index").text_content() == "7 / 100"
    # the cached frames shaded: half of the scrubber's width
    scrub, cached = (bar.root.locator(s).bounding_box() for s in (".ff-tl-scrub", ".ff-tl-cached"))
    assert cached["width"] == pytest.approx(scrub["width"] / 2, abs=1)
    assert bar.button("togglePlay").get_attribute("aria-label") == "Pause (space)"

    bar.button("togglePlay").click()
    assert strip(bar.next_event()) == {"type": "timeline", "action": "pause"}
    bar.set(playing=False)
    assert bar.button("togglePlay").get_attribute("aria-label") == "Play (space)"
    bar.button("togglePlay").click()
    assert strip(bar.next_event()) == {"type": "timeline", "action": "play"}
    bar.button("stepBack").click()
    assert strip(bar.next_event()) == {"type": "timeline", "action": "step", "delta": -1}
    bar.button("stepForward").click()
    assert strip(bar.next_event()) == {"type": "timeline", "action": "step", "delta": 1}
    bar.button("toggleDirection").click()
    assert strip(bar.next_event()) == {"type": "timeline", "action": "direction",
                                       "direction": -1}
    bar.set(direction=-1)
    assert bar.button("toggleDirection").get_attribute("aria-pressed") == "true"
    bar.root.locator(".ff-tl-speed").select_option("2")
    assert strip(bar.next_event()) == {"type": "timeline", "action": "speed", "speed": 2}
    # a generator's animation: no length, no scrubber
    bar.set(length=None, index=12)
    assert not bar.root.locator(".ff-tl-scrub").is_visible()
    assert bar.root.locator(".ff-tl-index").text_content() == "12"


def test_keys_act_only_while_the_bar_has_the_focus(served, page):
    bar = Bar(served, page, playing=False)
    # The figure focused: keys are matplotlib's (its 'left' is the toolbar's back).
    page.locator('section[data-figure="anim"] .ff-overlay').click(position={"x": 5, "y": 5})
    page.keyboard.press("ArrowLeft")
    keys = [(e["type"], e["key"]) for e in (bar.next_event(), bar.next_event())]
    assert keys == [("key_press", "left"), ("key_release", "left")]
    bar.drain()
    bar.button("stepForward").focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowRight")
    got = [strip(bar.next_event()) for _ in range(3)]
    assert got == [{"type": "timeline", "action": "play"},
                   {"type": "timeline", "action": "step", "delta": -1},
                   {"type": "timeline", "action": "step", "delta": 1}]
    # ... and nothing else: no key event reached the figure, no button was clicked twice.
    bar.button("stepBack").focus()
    bar.button("stepBack").click()
    assert strip(bar.next_event()) == {"type": "timeline", "action": "step", "delta": -1}
    assert bar.drain() == []


#: Scrub in the page: `perFrame` input events on the range in each of `frames` display
#: frames, values counting down from `start`; returns the number of display frames.
SCRUB = """async ([perFrame, frames, start]) => {
  const range = document.querySelector('section[data-figure="anim"] .ff-tl-range');
  let value = start;
  for (let f = 0; f < frames; f++) {
    await new Promise((r) => requestAnimationFrame(r));
    for (let i = 0; i < perFrame; i++) {
      range.value = String(value--);
      range.dispatchEvent(new Event("input", { bubbles: true }));
    }
  }
  await new Promise((r) => requestAnimationFrame(r));
  await new Promise((r) => requestAnimationFrame(r));
  return value;
}"""


#: Counts display frames from now on (window.__frames).
COUNT_FRAMES = """() => {
  window.__frames = 0;
  const tick = () => { window.__frames++; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


def test_scrubbing_sends_one_seek_per_display_frame_the_newest(served, page):
    bar = Bar(served, page, index=99, length=100, playing=False, cached=[0, 99])
    page.evaluate(COUNT_FRAMES)
    assert page.evaluate(SCRUB, [5, 10, 98]) == 98 - 50
    seeks = [strip(bar.next_event())]
    while seeks[-1]["index"] != 98 - 49:
        seeks.append(strip(bar.next_event()))
    frames = page.evaluate("window.__frames")
    # the first at once, then at most one a display frame, each the newest index asked
    indexes = [s["index"] for s in seeks]
    assert all(s["action"] == "seek" for s in seeks)
    assert indexes[0] == 98 and indexes == sorted(set(indexes), reverse=True)
    assert 2 <= len(seeks) <= min(11, frames)
    assert viewer_value(page, "anim", "v.timeline.indexEl.textContent") == "49 / 100"
    # a real drag on the scrubber: seeks, never more than one per display frame
    box = bar.root.locator(".ff-tl-range").bounding_box()
    y = box["y"] + box["height"] / 2
    page.evaluate(COUNT_FRAMES)
    page.mouse.move(box["x"] + box["width"] - 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 2, y, steps=40)
    page.mouse.up()
    seeks = [strip(bar.next_event())]
    while seeks[-1]["index"] != 0:
        seeks.append(strip(bar.next_event()))
    frames = page.evaluate("window.__frames")
    assert all(e["action"] == "seek" for e in seeks)
    assert 2 <= len(seeks) <= frames
    assert viewer_value(page, "anim", "v.timeline.indexEl.textContent") == "0 / 100"


def test_scrubbing_waits_for_the_figure_to_answer_each_seek(served, page):
    """A figure slower than the scrubber gets the seeks one at a time, the newest each
    time, never a backlog of frames nobody will see."""
    bar = Bar(served, page, echo=False, index=99, length=100, playing=False)
    page.evaluate(SCRUB, [5, 10, 98])
    assert strip(bar.next_event()) == {"type": "timeline", "action": "seek", "index": 98}
    # the figure shows 98: the newest index goes at once, and only that one (nothing in
    # between: events arrive in the order sent)
    bar.set(index=98, length=100, playing=False)
    assert strip(bar.next_event()) == {"type": "timeline", "action": "seek", "index": 49}
    bar.set(index=49, length=100, playing=False)
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert bar.timeline_events() == []


def test_a_figure_without_animation_has_no_timeline_bar(served, page):
    server, bridge = served
    stream = server.add_figure("still", 320, 240)
    stream.publish(np.full((240, 320, 4), 255, np.uint8))
    page.goto(bridge.figure_url("still"))
    wait_viewer(page, "still", "v.painted > 0")
    assert viewer_value(page, "still", "v.timeline.shown") is False
    assert not page.locator('section[data-figure="still"] .ff-timeline').is_visible()
    assert page.locator('section[data-figure="still"] [data-tool="close"]').is_visible()


SHOW_AND_WAIT = textwrap.dedent("""
    import sys
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(3, 2), dpi=100)
    fig.canvas.mpl_connect("close_event", lambda e: print("close_event", flush=True))
    plt.plot([1, 2])
    plt.show()
    print("show returned", flush=True)
    sys.stdin.readline()
    plt.figure(figsize=(4, 2), dpi=100)   # figure 1 again, as pyplot numbers it
    plt.plot([2, 1])
    plt.show()
    print("second show returned", flush=True)
""")


def test_close_button_closes_the_figure_and_a_blocking_show_returns(tmp_path, page):
    script = tmp_path / "script.py"
    script.write_text(SHOW_AND_WAIT)
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "serve", str(script)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                     daemon=True).start()

    def wait_line(pattern):
        while True:
            line = lines.get(timeout=30)
            if re.search(pattern, line):
                return line
    try:
        url = wait_line(r"^http://").strip()
        page.goto(re.sub(r"/(\?|$)", r"/figure/1\1", url, count=1))
        wait_viewer(page, "1", "v.painted > 0 && v.connected")
        page.locator('section[data-figure="1"] [data-tool="close"]').click()
        wait_line("close_event")
        wait_line("show returned")
        wait_viewer(page, "1", "v.figureClosed && !v.veil.hidden")
        assert viewer_value(page, "1", "v.veil.textContent") == "figure closed"
        close = page.locator('section[data-figure="1"] [data-tool="close"]')
        assert close.is_disabled()
        # the script goes on: its next figure (also "1") shows in the same page
        proc.stdin.write("\n")
        proc.stdin.flush()
        wait_viewer(page, "1", "!v.figureClosed && v.canvas.width === 400 && v.veil.hidden")
        close.click()
        wait_line("second show returned")
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


# -- end to end: a FuncAnimation served by the fastfig backend --------------------------------

class Animated:
    """A blitting FuncAnimation of N frames served by the runtime, open in the page, its
    timeline playing; frame i must look exactly as matplotlib draws it on Agg."""

    def __init__(self, rt, page, interval=10):  # noqa: F811
        self.rt, self.page = rt, page
        fig, x, lines = lines_figure(*SIZE)
        self.fig = fig
        self.anim = rt.call(lambda: FuncAnimation(fig, update_for(x, lines), frames=N,
                                                  interval=interval, blit=True))
        self.stream = rt.call(lambda: fastfig.show(fig, block=False))
        rt.call(lambda: fastfig.animate(self.anim, block=False))
        self.id = self.stream.id
        self.events = []
        self.stream.on_event(self.events.append)
        self.refs = REFERENCES[True][0]
        page.goto(rt.ensure_bridge().figure_url(self.id) + "&fit=0")
        wait_viewer(page, self.id, "v.painted > 0 && v.timeline.shown && v.state.timeline.playing")
        self.bar = page.locator(f'section[data-figure="{self.id}"] .ff-timeline')

    @property
    def source(self):
        return self.fig.canvas._timeline.source

    def button(self, action):
        return self.bar.locator(f'[data-timeline="{action}"]')

    def timeline(self, condition):
        wait_viewer(self.page, self.id, f"(t => {condition})(v.state.timeline)")
        return viewer_value(self.page, self.id, "v.state.timeline")

    def shows(self, index):
        """Wait until the timeline is at index and the canvas shows frame index exactly."""
        self.timeline(f"t.index === {index}")
        expected = self.refs[index]
        wait_for(lambda: np.array_equal(canvas_rgba(self.page, self.id)[0], expected))

    def display_frames(self, n):
        self.page.evaluate("""(n) => new Promise((resolve) => {
          const tick = () => (--n > 0 ? requestAnimationFrame(tick) : resolve());
          requestAnimationFrame(tick); })""", n)

    def close(self):
        self.rt.call(lambda: fastfig.close(self.fig))


#: Every display frame, the timeline's index and cached range as the page has them.
RECORD_TIMELINE = """
window.__timelines = [];
(function tick() {
  const v = window.fastfig && [...window.fastfig.viewers.values()][0];
  const t = v && v.state.timeline;
  if (t) window.__timelines.push([t.index, t.cached]);
  requestAnimationFrame(tick);
})();
"""


def test_pause_step_back_and_scrub_show_the_animations_frames(rt, page):  # noqa: F811
    page.add_init_script(RECORD_TIMELINE)
    a = Animated(rt, page)
    try:
        # playing: the canvas changes, the frames seen are shaded as cached
        seq = viewer_value(page, a.id, "v.display.paintedSeq")
        wait_viewer(page, a.id, f"v.display.paintedSeq !== {seq}")
        a.timeline("t.playing && t.cached && t.cached[0] === 0 && t.cached[1] >= 3")
        assert viewer_value(page, a.id, "!v.timeline.cachedEl.hidden")
        # ... from the first time through, every frame drawn adding to the run
        a.timeline("t.index < 10 && t.cached[1] === {}".format(N - 1))   # wrapped around
        seen = page.evaluate("window.__timelines")
        first = seen[:next(i for i in range(1, len(seen)) if seen[i][0] < seen[i - 1][0])]
        assert len(first) > 10 and all(c is not None and c[0] == 0 and c[1] >= i - 1
                                       for i, c in first if i > 0), first
        a.button("togglePlay").click()
        paused = a.timeline("!t.playing")["index"]
        a.shows(paused)
        # paused: nothing changes on the canvas, nothing is rendered
        seq = viewer_value(page, a.id, "v.display.paintedSeq")
        renders = a.source.draws + a.source.restores
        a.display_frames(20)
        assert viewer_value(page, a.id, "v.display.paintedSeq") == seq
        assert a.source.draws + a.source.restores == renders
        assert np.array_equal(canvas_rgba(page, a.id)[0], a.refs[paused])

        # a step back shows the frame before, from the cache
        restores = a.source.restores
        a.button("stepBack").click()
        a.shows(paused - 1)
        assert a.source.restores == restores + 1
        # keys on the focused bar: right steps forward
        page.keyboard.press("ArrowRight")
        a.shows(paused)

        # the scrubber seeks: to a seen frame (cached), then to one never drawn
        range_ = a.bar.locator(".ff-tl-range")
        assert range_.get_attribute("max") == str(N - 1)
        for index in (2, N - 1 if paused < N - 1 else 0):
            range_.fill(str(index))
            a.shows(index)
            assert viewer_value(page, a.id, "v.timeline.indexEl.textContent") == f"{index} / {N}"
        assert not viewer_value(page, a.id, "v.state.timeline.playing")

        # play again: the canvas moves on; a seek while playing plays on from there
        a.button("togglePlay").click()
        a.timeline("t.playing")
        seq = viewer_value(page, a.id, "v.display.paintedSeq")
        wait_viewer(page, a.id, f"v.display.paintedSeq !== {seq}")
        far = 5 if viewer_value(page, a.id, "v.state.timeline.index") > N // 2 else N // 2
        range_.fill(str(far))
        a.timeline(f"t.playing && t.index >= {far} && t.index < {far} + 10")
        assert {"type": "timeline", "action": "seek", "index": far} in map(strip, a.events)
    finally:
        a.close()
