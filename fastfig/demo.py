"""``fastfig demo``: live matplotlib figures in the browser, from one command.

Three figures, drawn by plain matplotlib code under the fastfig backend (nothing here knows
about frames or packets):

- a line animation with blitting (FuncAnimation, blit=True): the reference "line1"
  figure of the benchmarks, four sine panels, one of them moving;
- a heavier animation: an image with a colour bar and a scatter of coloured points, both
  changing every frame (blitted too, and lighter than the benchmarks' 10,000 points: it
  shares the loop with the others, which wait while it draws);
- an interactive figure: a slider sets the frequency of a curve, clicking a point picks
  it, keys are echoed; pan and zoom with the toolbar.

``build_figures(width, height)`` makes them (the tests and the browser benchmark use it);
``main(args)`` serves them with the viewer and blocks until Ctrl-C or SIGTERM.
"""

import numpy as np

from . import scenarios

#: Frames per second the animations ask for; frontends that take fewer get fewer.
ANIMATION_FPS = 60
HEAVY_FPS = 5


def line_animation(plt, width, height, dpi=100, interval_ms=1000 / ANIMATION_FPS):
    """line1 (fastfig.scenarios): 2x2 sine panels, the first line moving, redrawn by
    blitting."""
    return scenarios.live(plt, "line1", width, height, dpi=dpi, interval_ms=interval_ms,
                          title="Line animation (blitting)")


def heavy_animation(plt, width, height, dpi=100, interval_ms=1000 / HEAVY_FPS, blit=False,
                    points=10_000):
    """heavy (fastfig.scenarios): a cycled 512x512 random field with a colour bar beside
    a jittered scatter of ``points`` coloured points (10,000 in the reference scenario);
    every frame is a full draw (unless blit). Each frame costs 0.05-0.1 s of the loop
    every figure shares: the demo asks for few, so that the line animation keeps its pace."""
    return scenarios.live(plt, "heavy", width, height, dpi=dpi, interval_ms=interval_ms,
                          blit=blit, points=points, title="Image and scatter animation")


def interactive_figure(plt, width, height, dpi=100):
    """A slider for the frequency of a curve, pickable points, keys echoed in the title."""
    from matplotlib.widgets import Slider
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi,
                     num="Interactive: slider, picking, keys")
    ax = fig.add_axes((0.08, 0.25, 0.88, 0.65))
    ax_slider = fig.add_axes((0.15, 0.08, 0.7, 0.05))
    t = np.linspace(0, 2, 500)
    (curve,) = ax.plot(t, np.sin(2 * np.pi * 1.0 * t), lw=2)
    rng = np.random.default_rng(7)
    px, py = rng.random(25) * 2, rng.random(25) * 2 - 1
    points = ax.scatter(px, py, s=60, c="tab:gray", picker=True, pickradius=6, zorder=3)
    ax.set_xlim(0, 2)
    ax.set_ylim(-1.3, 1.3)
    ax.grid(True)
    title = ax.set_title("drag the slider, click a point, press a key")
    slider = Slider(ax_slider, "frequency", 0.1, 5.0, valinit=1.0)
    colors = np.array(["tab:gray"] * len(px), dtype=object)

    def on_slider(value):
        curve.set_ydata(np.sin(2 * np.pi * value * t))
        fig.canvas.draw_idle()

    def on_pick(event):
        if event.artist is not points or not len(event.ind):
            return
        i = int(event.ind[0])
        colors[:] = "tab:gray"
        colors[i] = "tab:red"
        points.set_color(list(colors))
        title.set_text(f"picked point {i} at ({px[i]:.2f}, {py[i]:.2f})")
        fig.canvas.draw_idle()

    def on_key(event):
        title.set_text(f"key pressed: {event.key}")
        fig.canvas.draw_idle()

    slider.on_changed(on_slider)
    fig.canvas.mpl_connect("pick_event", on_pick)
    fig.canvas.mpl_connect("key_press_event", on_key)
    fig._fastfig_demo_keep = slider   # widgets must outlive this function
    return fig, None


#: Points of the demo's scatter. Agg draws a scatter of individually coloured points at
#: about 9 ms per thousand (800x480): 10,000 held the loop the figures share for ~0.1 s
#: five times a second, and the line animation beside it fell to ~29 fps.
DEMO_POINTS = 3_000


def heavy_blitted(plt, width, height):
    return heavy_animation(plt, width, height, blit=True, points=DEMO_POINTS)


DEMOS = (line_animation, heavy_blitted, interactive_figure)


def build_figures(plt, width=800, height=480):
    """The demo figures as (figure, animation or None) pairs; keep the animations
    referenced, or matplotlib stops them."""
    return [make(plt, width, height) for make in DEMOS]


def main(args):
    """Serve the demo figures with the browser viewer until Ctrl-C or SIGTERM."""
    import signal
    import sys
    import webbrowser

    import matplotlib
    matplotlib.use("fastfig")
    import matplotlib.pyplot as plt

    from .mpl import runtime

    rt = runtime.get()
    # Served until a signal, even once every figure is closed; the URL below is what to
    # open, so nothing else is announced.
    rt.configure(keep_serving=True, announce=False)
    rt.ensure_loop(mode="script")
    rt.ensure_server()
    bridge = rt.ensure_bridge(port=args.port or 0, token=args.token)
    figures = build_figures(plt, *args.size)
    plt.show(block=False)
    print(f"fastfig demo: {len(figures)} live figures. Open this URL in a browser "
          "(Ctrl-C to stop):", flush=True)
    print(bridge.url, flush=True)
    if args.open:
        webbrowser.open(bridge.url)

    def terminate(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminate)
    try:
        rt.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        plt.close("all")    # while the server still runs: frontends are told
        rt.close()
        sys.stdout.flush()
    return 0
