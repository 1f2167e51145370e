"""Closing a figure from its frontend, as closing its window: matplotlib's close_event
fires, the frontends are told, and the figure is no longer served."""

from backend_helpers import Served, lines_figure, rt, wait_for  # noqa: F401


def test_close_action_closes_a_served_figure(rt):
    fig, _, _ = lines_figure(200, 150)
    s = Served(rt, fig)
    closed = []
    try:
        s.frame()
        s.call(lambda: fig.canvas.mpl_connect("close_event", lambda e: closed.append(e)))
        # The toolbar action a viewer's close button sends (PROTOCOL.md: toolbar events).
        s.call(lambda: fig.canvas.handle_event({"type": "toolbar", "name": "close"}))
        wait_for(lambda: s.client.next_frame(timeout=0.05) is None and s.client.closed)
        assert len(closed) == 1
        assert fig.canvas.stream is None and fig.canvas not in rt.canvases
    finally:
        s.client.close()
