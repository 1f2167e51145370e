"""The backend: frames from draws and blits, animations, resize, several figures,
selection by name."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from matplotlib.animation import FuncAnimation

import fastfig
from backend_helpers import Served, agg_render, lines_figure, rt, wait_for  # noqa: F401


def test_draw_publishes_the_agg_image(rt):
    fig, x, lines = lines_figure()
    s = Served(rt, fig)
    try:
        assert np.array_equal(s.frame(), agg_render(lines_figure()[0]))
        def change():
            lines[0].set_ydata(np.cos(x))
            fig.canvas.draw()
        s.call(change)
        ref_fig, _, ref_lines = lines_figure()
        ref_lines[0].set_ydata(np.cos(x))
        expected = agg_render(ref_fig)
        assert np.array_equal(s.frame(until=lambda im: np.array_equal(im, expected)), expected)
    finally:
        s.close()


def test_draw_idle_coalesces(rt):
    fig, x, lines = lines_figure(320, 240)
    s = Served(rt, fig)
    try:
        s.frame()
        frames = fig.canvas._frames
        before = frames.renders

        def many():
            for i in range(10):
                lines[0].set_ydata(np.sin(x + i))
                fig.canvas.draw_idle()
        s.call(many)
        ref_fig, _, ref_lines = lines_figure(320, 240)
        ref_lines[0].set_ydata(np.sin(x + 9))
        expected = agg_render(ref_fig)
        s.frame(until=lambda im: np.array_equal(im, expected))
        assert frames.renders - before == 1
    finally:
        s.close()


@pytest.mark.parametrize("blit", [True, False])
def test_animation_frames_equal_agg_renders(rt, blit):
    n = 15
    fig, x, lines = lines_figure(480, 360)

    def update(i):
        lines[0].set_ydata(np.sin(x + 0.1 * i))
        return lines[:1]

    ref_fig, _, ref_lines = lines_figure(480, 360)
    # Before its first step, a blitting animation shows the background alone (as on Qt).
    ref_lines[0].set_visible(False)
    references = {agg_render(ref_fig).tobytes(): -1}
    ref_lines[0].set_visible(True)
    for i in range(n):
        ref_lines[0].set_ydata(np.sin(x + 0.1 * i))
        references[agg_render(ref_fig).tobytes()] = i

    anim = rt.call(lambda: FuncAnimation(fig, update, frames=range(n), interval=1,
                                         blit=blit, repeat=False))
    assert anim._blit is blit
    s = Served(rt, fig)
    try:
        rt.call(lambda: fastfig.animate(anim, block=False))
        seen = []
        while not seen or seen[-1] != n - 1:
            image = s.frame()
            assert image.tobytes() in references, "a frame that no Agg render matches"
            seen.append(references[image.tobytes()])
        assert seen == sorted(seen)
        if blit:
            # Blitted frames carry only the damage of the moving line's axes.
            assert fig.canvas._frames.renders == 0
    finally:
        rt.call(lambda: anim.event_source and anim.pause())
        s.close()


def test_blit_sends_only_its_box(rt):
    fig, x, lines = lines_figure()
    s = Served(rt, fig)
    try:
        s.frame()
        ax = lines[0].axes

        def blit():
            lines[0].set_animated(True)
            fig.canvas.draw()
            bg = fig.canvas.copy_from_bbox(ax.bbox)
            sent = fig.canvas._stream.bytes_published
            fig.canvas.restore_region(bg)
            lines[0].set_ydata(np.cos(x))
            ax.draw_artist(lines[0])
            fig.canvas.blit(ax.bbox)
            return sent
        s.call(blit)
        image = s.frame(until=lambda im: True)
        image = s.latest()
        ref_fig, _, ref_lines = lines_figure()
        ref_lines[0].set_ydata(np.cos(x))
        assert np.array_equal(image, agg_render(ref_fig))
    finally:
        s.close()


@pytest.mark.parametrize("ratio", [1, 2])
def test_resize_changes_the_frame_size(rt, ratio):
    fig, x, lines = lines_figure(320, 240)
    s = Served(rt, fig)
    try:
        assert s.frame().shape == (240, 320, 4)
        s.client.send_event("resize", width=400, height=300, device_pixel_ratio=ratio)
        image = s.frame(until=lambda im: im.shape[:2] == (300 * ratio, 400 * ratio))
        assert image.shape == (300 * ratio, 400 * ratio, 4)
        assert s.call(lambda: fig.dpi) == 100 * ratio
        assert s.call(lambda: tuple(fig.canvas.get_width_height(physical=True))) == (
            400 * ratio, 300 * ratio)
    finally:
        s.close()


def test_figures_have_their_own_topics_and_close(rt):
    a, _, _ = lines_figure(200, 100)
    b, _, _ = lines_figure(300, 150)
    sa, sb = Served(rt, a), Served(rt, b)
    try:
        assert sa.stream.id != sb.stream.id
        assert sa.frame().shape == (100, 200, 4)
        assert sb.frame().shape == (150, 300, 4)
        rt.call(lambda: fastfig.close(a))
        wait_for(lambda: sa.client.next_frame(timeout=0.05) is None and sa.client.closed)
        assert a.canvas.stream is None and sb.stream.id in rt.server.figures
        assert sb.stream.id in [f["id"] for f in sb.client.figures()]
        # Shown again: a new stream, and frames again.
        again = rt.call(lambda: fastfig.show(a, block=False))
        c = fastfig.Client(rt.server.address, again.id, timeout=10)
        try:
            assert c.next_frame(timeout=10).image.shape == (100, 200, 4)
        finally:
            c.close()
    finally:
        sa.close()
        sb.close()


SCRIPT = """
import sys
import matplotlib
{select}
import matplotlib.pyplot as plt
fig = plt.figure()
print(matplotlib.get_backend(), type(fig.canvas).__name__, fig.canvas.supports_blit)
"""


@pytest.mark.parametrize("select", [
    "matplotlib.use('fastfig')", "matplotlib.use('module://fastfig.mpl.backend')", "ENV"])
def test_backend_selectable_by_name(select):
    env = dict(os.environ)
    if select == "ENV":
        env["MPLBACKEND"] = "fastfig"
        select = ""
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(select=select)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    name, canvas, blit = out.stdout.split()
    assert name in ("fastfig", "module://fastfig.mpl.backend")
    assert canvas == "FigureCanvasFastfig" and blit == "True"


SHOW_SCRIPT = textwrap.dedent("""
    import matplotlib
    matplotlib.use("fastfig")
    import matplotlib.pyplot as plt
    plt.figure(figsize=(3, 2), dpi=100)
    plt.plot([1, 2, 3])
    plt.figure(figsize=(2, 2), dpi=100)
    plt.show()
    print("returned")
""")


def test_plt_show_blocks_and_serves_until_sigterm(tmp_path):
    script = tmp_path / "show.py"
    script.write_text(SHOW_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, FASTFIG_ADDRESS="tcp"))
    try:
        line = proc.stdout.readline()
        assert line.startswith("fastfig: serving 2 figures at tcp://127.0.0.1:"), line
        address = line.split(" at ")[1].split()[0]
        with fastfig.Client(address, "1", timeout=10) as c:
            assert c.next_frame(timeout=10).image.shape == (200, 300, 4)
        with fastfig.Client(address, "2", timeout=10) as c:
            assert c.next_frame(timeout=10).image.shape == (200, 200, 4)
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "returned" not in out
    finally:
        proc.kill()
        proc.wait()
