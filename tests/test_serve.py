"""`fastfig serve SCRIPT`: the script runs under the fastfig backend, live."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np

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


def test_serve_streams_a_pause_loop(tmp_path):
    proc, address = serve(tmp_path, PAUSE_LOOP)
    try:
        assert changing_frames(address)[0].shape == (200, 200, 4)
    finally:
        stop(proc)
