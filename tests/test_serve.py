"""`fastfig serve SCRIPT`: the script runs under the fastfig backend, live."""

import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastfig import Client

ANIMATION = textwrap.dedent("""
    import numpy as np
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation
    assert matplotlib.get_backend() in ("fastfig", "module://fastfig.mpl.backend")
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=100)
    x = np.linspace(0, 6, 200)
    (line,) = ax.plot(x, np.sin(x))
    anim = FuncAnimation(fig, lambda i: (line.set_ydata(np.sin(x + 0.2 * i)), [line])[1],
                         interval=5, blit=True, cache_frame_data=False)
    plt.show()
""")

PAUSE_LOOP = textwrap.dedent("""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2), dpi=100)
    (line,) = ax.plot([0, 1], [0, 1])
    for i in range(100000):
        line.set_ydata([0, (i % 10) / 10])
        plt.pause(0.01)
""")


def serve(tmp_path, source):
    script = tmp_path / "script.py"
    script.write_text(source)
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "serve", str(script),
                             "--address", "tcp"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise AssertionError(line + proc.stderr.read())
    return proc, line.split(" on ")[1].split()[0]


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err


def changing_frames(address, figure="1", count=3):
    with Client(address, figure, timeout=15) as c:
        images = []
        while len(images) < count:
            f = c.next_frame(timeout=15)
            assert f is not None
            if not images or not np.array_equal(images[-1], f.image):
                images.append(f.image.copy())
        return images


def test_serve_runs_a_blitting_animation_until_sigterm(tmp_path):
    proc, address = serve(tmp_path, ANIMATION)
    try:
        images = changing_frames(address)
        assert images[0].shape == (240, 320, 4)
    finally:
        stop(proc)


SHOW_THEN_MORE = textwrap.dedent("""
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(2, 2), dpi=100)
    plt.plot([1, 2])
    # 'c' closes the figure through plt.close (the other way is matplotlib's 'q').
    fig.canvas.mpl_connect("key_press_event",
                           lambda e: plt.close(fig) if e.key == "c" else None)
    plt.show()
    print("first show returned", flush=True)
    plt.figure(figsize=(3, 2), dpi=100)
    plt.plot([2, 1])
    plt.show()
    print("second show returned", flush=True)
""")


class Lines:
    """proc's output lines, read in a thread: wait for one with a timeout."""

    def __init__(self, proc):
        import queue
        import threading
        self.queue = queue.Queue()
        threading.Thread(target=lambda: [self.queue.put(line) for line in proc.stdout],
                         daemon=True).start()

    def wait_for(self, text, timeout=30):
        while True:
            line = self.queue.get(timeout=timeout)
            if text in line:
                return line


def frame_shape(address, figure):
    with Client(address, figure, timeout=30) as c:
        f = c.next_frame(timeout=30)
        assert f is not None
        return f.image.shape


def close_with_key(address, figure, key):
    with Client(address, figure, timeout=30) as c:
        assert c.next_frame(timeout=30) is not None
        assert c.send_event("key_press", key=key)


@pytest.mark.parametrize("how", ["fastfig serve", "python"])
def test_blocking_show_returns_when_its_figures_close(tmp_path, how):
    """As under a desktop backend: show() returns once its figure is closed (plt.close
    from a key handler, then matplotlib's 'q'), and the figure made after it is served."""
    script = tmp_path / "script.py"
    script.write_text(SHOW_THEN_MORE)
    if how == "python":
        command = [sys.executable, str(script)]
        env = dict(os.environ, MPLBACKEND="fastfig", FASTFIG_ADDRESS="tcp")
    else:
        command = [sys.executable, "-m", "fastfig.cli", "serve", str(script), "--no-viewer"]
        env = None
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        lines = Lines(proc)
        address = re.search(r"(tcp://\S+)", lines.wait_for("fastfig: serving")).group(1)
        assert frame_shape(address, "1") == (200, 200, 4)
        close_with_key(address, "1", "c")
        lines.wait_for("first show returned")
        # pyplot numbers the next figure 1 again: the new one is served under it.
        assert frame_shape(address, "1") == (200, 300, 4)
        close_with_key(address, "1", "q")
        lines.wait_for("second show returned")
        assert proc.wait(timeout=30) == 0      # no figure left: the script just ends
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_serve_streams_a_pause_loop(tmp_path):
    proc, address = serve(tmp_path, PAUSE_LOOP)
    try:
        assert changing_frames(address)[0].shape == (200, 200, 4)
    finally:
        stop(proc)


# Like matplotlib's event_handling/resample.py: prints before its figure is served, and
# from an xlim_changed callback that redraws (draw_idle) on every pan step.
RESAMPLING = textwrap.dedent("""
    import matplotlib.pyplot as plt
    import numpy as np
    x = np.linspace(16, 365, 1396)
    print("before show: 1396 points", flush=True)
    fig, ax = plt.subplots(figsize=(3, 2), dpi=100)
    (line,) = ax.plot(x, np.sin(x / 20), "o-")
    ax.set_autoscale_on(False)
    def resample(ax):
        lo, hi = ax.viewLim.intervalx
        keep = (x > lo) & (x < hi)
        line.set_data(x[keep][::4], np.sin(x[keep][::4] / 20))
        print(f"using {keep.sum() // 4} of {keep.sum()} visible points", flush=True)
        ax.figure.canvas.draw_idle()
    ax.callbacks.connect("xlim_changed", resample)
    ax.set_xlim(16, 365)
    plt.show()
    print("show returned", flush=True)
""")


def test_a_script_printing_from_a_redrawing_callback_exits_once_closed(tmp_path):
    """resample.py 'hung' in the gallery sweep: its own print came before fastfig's serving
    line. Served, panned with the toolbar (each step prints and redraws) and closed with
    'q', such a script ends at once, status 0, no traceback."""
    script = tmp_path / "script.py"
    script.write_text(RESAMPLING)
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "serve", str(script),
                             "--no-viewer", "--address", "tcp"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = Lines(proc)
        lines.wait_for("before show")
        address = re.search(r"(tcp://\S+)", lines.wait_for("fastfig: serving")).group(1)
        with Client(address, "1", timeout=30) as c:
            first = c.next_frame(timeout=30)
            assert first is not None
            before = first.image.copy()    # frames share the decoder's image
            c.send_event("toolbar", name="pan")
            c.send_event("button_press", x=150, y=100, button=1)
            for step in range(1, 21):
                c.send_event("motion_notify", x=150 - 3 * step, y=100, buttons=1)
            c.send_event("button_release", x=90, y=100, button=1)
            lines.wait_for("visible points")        # the callback ran, and printed
            panned = c.next_frame(timeout=30)
            assert panned is not None and not np.array_equal(panned.image, before)
            c.send_event("toolbar", name="pan")     # pan mode off: 'q' is a plain key
            c.send_event("key_press", key="q")
        lines.wait_for("show returned")
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
