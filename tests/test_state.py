"""Figure state: every kind of state message matplotlib's toolbar and figures produce is
carried to frontends, whatever text it holds (issue 11: the toolbar's message over an
image has a newline, which used to fail the check and lose the whole batch)."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.backends.backend_agg import FigureCanvasAgg

from fastfig.transport import protocol as P
from backend_helpers import Served, drag_events, rt  # noqa: F401

# One example per state field, as matplotlib produces it.
KINDS = {
    "title": ["Figure 1", "résumé: α/β – 1\u2009µs", "two\nlines"],
    "message": ["x=1.00 y=2.00", "x=12.3 y=45.6\n[0.731]", "(x, y) = (1, 2)\t[1, 2, 3]",
                "", None],
    "cursor": sorted(P.CURSORS),
    "navigate_mode": [None, "PAN", "ZOOM"],
    "history": [{"back": True, "forward": False}, {"back": False, "forward": True}],
    "rubberband": [None, [0, 0, 10.5, 20], [-5, 3, 700, 400]],
    "capture_scroll": [True, False],
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_state_kind_passes_unchanged(name):
    for value in KINDS[name]:
        out = P.check_state({name: value})
        expected = "" if value is None and name in ("title", "message") else value
        assert out == {name: expected}


def test_text_keeps_newlines_and_tabs_and_neutralises_other_controls():
    out = P.check_state({"message": "x=1\ty=2\n[3]\x1b[2J\x00\x7f"})
    assert out["message"] == "x=1\ty=2\n[3]\ufffd[2J\ufffd\ufffd"


def test_overlong_text_is_cut_not_refused():
    out = P.check_state({"title": "t" * 10_000, "cursor": "move"})
    assert len(out["title"]) == P.MAX_STATE_TEXT and out["title"].endswith("\u2026")
    assert out["cursor"] == "move"


def test_a_batch_with_an_image_message_keeps_its_other_fields():
    batch = {"message": "x=3.0 y=4.0\n[0.25]", "navigate_mode": "ZOOM",
             "rubberband": [1, 2, 3, 4], "cursor": "crosshair"}
    assert P.check_state(batch) == batch


def image_figure(width=400, height=300, dpi=100):
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(np.arange(64, dtype=float).reshape(8, 8) / 64, extent=(0, 8, 0, 8))
    return fig


def test_pointer_over_an_image_carries_matplotlibs_two_line_message(rt):
    fig = image_figure()
    s = Served(rt, fig)
    try:
        s.frame()
        s.events(("motion_notify", dict(x=200, y=150)))
        message = s.state("message", lambda m: "\n" in m)
        head, value = message.split("\n")
        assert "4.00" in head          # the pointer's data coordinates (matplotlib's wording)
        assert value.startswith("[") and value.endswith("]")
        # The zoom that follows still reaches the frontend: the batch was not lost.
        s.events(("toolbar", {"name": "zoom"}))
        assert s.state("navigate_mode", "ZOOM")
        s.events(*drag_events([(100, 80), (150, 120), (200, 160)]))
        assert s.state("history", {"back": True, "forward": False})
    finally:
        s.close()
