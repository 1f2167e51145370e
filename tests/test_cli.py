"""The fastfig command line (fastfig/cli.py) as a user runs it."""

import os
import stat
import subprocess
import sys
import textwrap

import numpy as np

from fastfig import Client

def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "fastfig.cli", *args], capture_output=True,
                          text=True, timeout=30, **kwargs)


def spawn(*args):
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc


def read_address(proc, marker):
    for _ in range(5):
        line = proc.stdout.readline()
        if marker in line:
            return line.split(marker)[1].split()[0]
    proc.kill()
    raise AssertionError(f"no address line: {proc.stderr.read()}")


def test_keys(tmp_path):
    out = run_cli("keys", str(tmp_path / "k"))
    assert out.returncode == 0, out.stderr
    secret = tmp_path / "k" / "server.key_secret"
    assert (tmp_path / "k" / "server.key").exists() and secret.exists()
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o700
    assert "CURVE" in run_cli("keys", "--help").stdout


def test_serve_script_and_relay(tmp_path):
    script = tmp_path / "plot.py"
    script.write_text(textwrap.dedent("""
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=100)
        ax.plot([0, 1, 2], [0, 1, 0])
        plt.figure(figsize=(2, 2), dpi=100)
        plt.show()
    """))
    server = spawn("serve", str(script), "--address", "ipc")
    relay = None
    try:
        address = read_address(server, "figure(s) on ")
        with Client(address, timeout=10) as c:
            assert [f["id"] for f in c.figures()] == ["1", "2"]
            f = c.next_frame(10)
            assert f.image.shape == (240, 320, 4)
            assert (f.image[..., :3] < 250).any()   # something was drawn
            image = f.image.copy()
        relay = spawn("relay", "--connect", address)
        relay_address = read_address(relay, " -> ")
        with Client(relay_address, figure="2", timeout=10) as c:
            assert c.next_frame(10).image.shape == (200, 200, 4)
        with Client(relay_address, figure="1", timeout=10) as c:
            assert np.array_equal(c.next_frame(10).image, image)
    finally:
        for p in (server, relay):
            if p is not None:
                p.kill()
                p.wait(10)


def test_refuses_remote_bind(tmp_path):
    script = tmp_path / "empty.py"
    script.write_text("")
    out = run_cli("serve", str(script), "--address", "tcp://0.0.0.0:0")
    assert out.returncode == 1 and "refusing" in out.stderr
