"""Shared by the transport tests: deterministic frames that say which frame they are,
bounded waits, and a server process to kill (``python transport_helpers.py ADDRESS``)."""

import os
import socket
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def make_frame(i, width=160, height=120, figure=0):
    """Frame i of a moving-line animation; pixel (0, 0) holds i, so any image names the
    frame it should equal (frame_index)."""
    img = np.full((height, width, 4), 255, np.uint8)
    img[:, (3 * i) % width, :3] = (20, 60, 200)
    img[(5 * i) % height, :, 1] = 90
    img[10:20, 10:20, 2] = (figure * 37) % 256
    img[0, 0] = np.frombuffer(np.uint32(i).tobytes(), np.uint8)
    return img


def frame_index(image):
    return int(np.frombuffer(image[0, 0].tobytes(), np.uint32)[0])


def wait_for(condition, timeout=10.0, interval=0.01):
    """Poll condition until true; fail the test (never hang) after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server_process(address, fps=100, width=160, height=120):
    """A server process publishing make_frame(i) at fps on address; prints its
    address when ready."""
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "transport_helpers.py"),
                             address, str(fps), str(width), str(height)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.kill()
        raise AssertionError(f"server process failed to start: {line!r}")
    return proc


def _serve(address, fps, width, height):
    from fastfig import Server
    server = Server.run_in_thread(address)
    stream = server.add_figure("1", width, height)
    print("ready", server.address, flush=True)
    i = 0
    while True:
        stream.publish(make_frame(i, width, height))
        i += 1
        time.sleep(1 / fps)


if __name__ == "__main__":
    _serve(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
