"""Input events become the matplotlib events a Qt user would get."""

import numpy as np
import pytest
from matplotlib.backend_bases import MouseButton
from matplotlib.widgets import Button, RectangleSelector, Slider

from backend_helpers import (QtReference, Served, drag_events, lines_figure, rt,  # noqa: F401
                             wait_for)
from fastfig.mpl.events import qt_key


def limits(fig):
    return [(ax.get_xlim(), ax.get_ylim()) for ax in fig.axes]


@pytest.mark.parametrize("tool,ratio,points,button", [
    ("pan", 1, [(150, 120), (170, 130), (210, 160)], 1),
    ("pan", 2, [(100, 80), (120, 70), (140, 60)], 3),        # right drag: zoom by pan
    ("zoom", 1, [(100, 60), (140, 90), (200, 150)], 1),
    ("zoom", 2, [(60, 40), (90, 60), (120, 100)], 3),        # right drag: zoom out
])
def test_pan_and_zoom_drags_match_qt(rt, tool, ratio, points, button):
    fig, _, _ = lines_figure(640, 480)
    s = Served(rt, fig)
    try:
        s.frame()
        if ratio != 1:   # the same CSS size at a higher pixel ratio
            s.events(("resize", dict(width=640 / ratio, height=480 / ratio,
                                     device_pixel_ratio=ratio)))
        s.events(("toolbar", {"name": tool}))
        assert s.state("navigate_mode", tool.upper())
        before = s.call(limits, fig)
        s.events(*drag_events(points, button=button))
        after = s.call(limits, fig)
        assert after != before

        ref_fig, _, _ = lines_figure(640, 480)
        if ratio != 1:
            ref_fig.set_dpi(100 * ratio)
            ref_fig.set_size_inches(640 / ratio * ratio / ref_fig.dpi,
                                    480 / ratio * ratio / ref_fig.dpi)
        qt = QtReference(ref_fig, ratio)
        getattr(qt.toolbar, tool)()
        assert limits(ref_fig) == before
        qt.drag(points, MouseButton(button))
        np.testing.assert_allclose(after, limits(ref_fig), rtol=1e-12, atol=1e-12)
    finally:
        s.close()


def test_zoom_reports_rubberband_message_and_cursor(rt):
    fig, _, _ = lines_figure(640, 480)
    s = Served(rt, fig)
    try:
        s.frame()
        s.events(("toolbar", {"name": "zoom"}))
        events = drag_events([(100, 60), (140, 90), (200, 150)])
        s.events(*events[:-1])
        band = s.state("rubberband", lambda v: v is not None and v[2] > 190)
        assert band == pytest.approx([100, 60, 200, 150], abs=1)
        assert "(x, y) = (" in s.state("message", lambda m: "(x, y) = (" in m)
        assert s.state("cursor", "crosshair")
        s.events(events[-1])
        assert s.state("rubberband", None) is None
        assert s.state("history", {"back": True, "forward": False})
    finally:
        s.close()


@pytest.mark.parametrize("sent,expected", [
    ("a", "a"), ("ctrl+shift+a", "ctrl+A"), ("shift+a", "A"), ("alt+left", "alt+left"),
    ("shift+ctrl+x", "ctrl+X"), ("ctrl+alt+shift+f5", "ctrl+alt+shift+f5"),
    ("enter", "enter"), ("ctrl++", "ctrl++"), ("escape", "escape"),
])
def test_key_names(sent, expected):
    assert qt_key(sent) == expected


def test_key_events_reach_mpl_connect(rt):
    fig, _, _ = lines_figure(320, 240)
    s = Served(rt, fig)
    got = []
    try:
        s.frame()
        s.call(fig.canvas.mpl_connect, "key_press_event",
               lambda e: got.append(("press", e.key, e.x, e.y)))
        s.call(fig.canvas.mpl_connect, "key_release_event",
               lambda e: got.append(("release", e.key, e.x, e.y)))
        s.events(("motion_notify", dict(x=10, y=20)),
                 ("key_press", dict(key="ctrl+shift+a")),
                 ("key_release", dict(key="ctrl+shift+a")),
                 ("key_press", dict(key="alt+left")))
        assert got == [("press", "ctrl+A", 10, 220), ("release", "ctrl+A", 10, 220),
                       ("press", "alt+left", 10, 220)]
    finally:
        s.close()


def test_mouse_events_coordinates_buttons_modifiers(rt):
    fig, _, _ = lines_figure(320, 240)
    s = Served(rt, fig)
    got = []
    try:
        s.frame()
        s.events(("resize", dict(width=160, height=120, device_pixel_ratio=2)))
        for name in ("button_press_event", "button_release_event", "scroll_event",
                     "motion_notify_event", "figure_enter_event", "figure_leave_event"):
            s.call(fig.canvas.mpl_connect, name, lambda e: got.append(e))
        s.events(("figure_enter", dict(x=5, y=6)),
                 ("button_press", dict(x=10.5, y=20, button=3, modifiers=["shift", "ctrl"])),
                 ("motion_notify", dict(x=11, y=21, buttons=2)),
                 ("button_release", dict(x=11, y=21, button=3)),
                 ("dblclick", dict(x=12, y=22, button=1)),
                 ("scroll", dict(x=40, y=30, step=-2, modifiers=["alt"])),
                 ("button_press", dict(x=1, y=1, button=8)),
                 ("figure_leave", dict(x=0, y=0)))
        names = [e.name for e in got]
        assert names == ["figure_enter_event", "button_press_event", "motion_notify_event",
                         "button_release_event", "button_press_event", "scroll_event",
                         "button_press_event", "figure_leave_event"]
        enter, press, motion, release, dbl, scroll, back, leave = got
        assert (enter.x, enter.y) == (10, 240 - 12)
        assert (press.x, press.y) == (21, 200) and press.button is MouseButton.RIGHT
        assert press.modifiers == {"ctrl", "shift"} and not press.dblclick
        assert motion.buttons == {MouseButton.RIGHT}
        assert release.button is MouseButton.RIGHT
        assert dbl.dblclick and dbl.button is MouseButton.LEFT
        assert scroll.step == -2 and scroll.button == "down" and scroll.modifiers == {"alt"}
        assert (scroll.x, scroll.y) == (80, 180)
        assert back.button is MouseButton.BACK
        assert scroll.inaxes is fig.axes[0] and scroll.xdata is not None   # top left
    finally:
        s.close()


def test_slider_dragged_by_events_changes_and_redraws(rt):
    fig, _, lines = lines_figure(400, 300)
    fig.subplots_adjust(bottom=0.25)
    slider_ax = fig.add_axes([0.2, 0.05, 0.6, 0.05])
    slider = Slider(slider_ax, "phase", 0.0, 10.0, valinit=0.0)
    seen = []
    slider.on_changed(seen.append)
    s = Served(rt, fig)
    try:
        first = s.frame()
        # The slider's axes in CSS pixels from the top left.
        x0, y0, x1, y1 = s.call(lambda: slider_ax.bbox.extents)
        ymid = 300 - (y0 + y1) / 2
        start, end = x0 + 2, x0 + 0.75 * (x1 - x0)
        s.events(*drag_events([(start, ymid), ((start + end) / 2, ymid), (end, ymid)]))
        value = s.call(lambda: slider.val)
        assert value == pytest.approx(7.5, abs=0.2) and seen and seen[-1] == value
        later = s.frame(until=lambda im: not np.array_equal(im, first))
        assert not np.array_equal(later, first)
    finally:
        s.close()


def test_button_rectangle_selector_and_picker(rt):
    fig, x, lines = lines_figure(400, 300)
    button_ax = fig.add_axes([0.85, 0.9, 0.12, 0.08])
    button = Button(button_ax, "go")
    clicks, picks, boxes = [], [], []
    button.on_clicked(clicks.append)
    lines[1].set_picker(5)
    fig.canvas.mpl_connect("pick_event", lambda e: picks.append(e.artist))
    selector = RectangleSelector(fig.axes[2], lambda press, release: boxes.append(
        (press.xdata, press.ydata, release.xdata, release.ydata)), interactive=False)
    s = Served(rt, fig)

    def css(ax_or_artist_point):
        X, Y = ax_or_artist_point
        return X, 300 - Y
    try:
        s.frame()
        bx, by = css(s.call(lambda: button_ax.bbox.corners().mean(axis=0)))
        s.events(("button_press", dict(x=bx, y=by, button=1)),
                 ("button_release", dict(x=bx, y=by, button=1)))
        assert len(clicks) == 1
        # A point on line 1 (top right axes).
        px, py = css(s.call(lambda: lines[1].get_transform().transform((x[300],
                                                                        np.sin(x[300])))))
        s.events(("button_press", dict(x=px, y=py, button=1)),
                 ("button_release", dict(x=px, y=py, button=1)))
        assert picks == [lines[1]]
        ax = fig.axes[2]
        (ax0, ay0), (ax1, ay1) = s.call(lambda: ax.bbox.get_points())
        p0 = (ax0 + 0.2 * (ax1 - ax0), 300 - (ay0 + 0.2 * (ay1 - ay0)))
        p1 = (ax0 + 0.6 * (ax1 - ax0), 300 - (ay0 + 0.7 * (ay1 - ay0)))
        s.events(*drag_events([p0, ((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2), p1]))
        assert len(boxes) == 1
        xmin, xmax, ymin, ymax = s.call(lambda: selector.extents)
        inv = s.call(lambda: ax.transData.inverted().transform(
            [(p0[0], 300 - p0[1]), (p1[0], 300 - p1[1])]))
        assert (xmin, ymin) == pytest.approx(tuple(inv[0]))
        assert (xmax, ymax) == pytest.approx(tuple(inv[1]))
    finally:
        s.close()
