"""The toolbar: home/back/forward/pan/zoom from toolbar events, history state, and
downloads in savefig's formats."""

import pytest

from backend_helpers import Served, drag_events, lines_figure, rt  # noqa: F401


def test_history_home_back_forward(rt):
    fig, _, _ = lines_figure(400, 300)
    ax = fig.axes[0]
    s = Served(rt, fig)
    try:
        s.frame()
        home = s.call(lambda: (ax.get_xlim(), ax.get_ylim()))
        s.events(("toolbar", {"name": "pan"}))
        s.events(*drag_events([(80, 70), (90, 75), (110, 90)]))
        panned = s.call(lambda: (ax.get_xlim(), ax.get_ylim()))
        assert panned != home
        assert s.state("history", {"back": True, "forward": False})
        s.events(("toolbar", {"name": "back"}))
        assert s.call(lambda: (ax.get_xlim(), ax.get_ylim())) == home
        assert s.state("history", {"back": False, "forward": True})
        s.events(("toolbar", {"name": "forward"}))
        assert s.call(lambda: (ax.get_xlim(), ax.get_ylim())) == panned
        s.events(("toolbar", {"name": "home"}))
        assert s.call(lambda: (ax.get_xlim(), ax.get_ylim())) == home
        s.events(("toolbar", {"name": "pan"}))       # toggles pan off
        assert s.state("navigate_mode", None) is None
    finally:
        s.close()


def test_pan_mode_cursor(rt):
    fig, _, _ = lines_figure(400, 300)
    s = Served(rt, fig)
    try:
        s.frame()
        s.events(("toolbar", {"name": "pan"}), ("motion_notify", dict(x=80, y=70)))
        assert s.state("cursor", "move")
        s.events(("motion_notify", dict(x=2, y=2)))
        assert s.state("cursor", "default")
    finally:
        s.close()


SIGNATURES = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml", "eps": b"%!PS",
              "ps": b"%!PS", "jpg": b"\xff\xd8", "tiff": b"II*\x00", "webp": b"RIFF",
              "svgz": b"\x1f\x8b"}


def test_download_formats(rt):
    fig, _, _ = lines_figure(200, 150)
    s = Served(rt, fig)
    try:
        s.frame()
        for fmt, signature in SIGNATURES.items():
            assert s.client.download(fmt, timeout=30).startswith(signature), fmt
        assert len(s.client.download("rgba", timeout=30)) == 200 * 150 * 4
    finally:
        s.close()
