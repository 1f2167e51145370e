"""The fastfig command line (fastfig/cli.py) as a user runs it."""

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import urllib.request

import numpy as np
import pytest

import fastfig
from fastfig import Client


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "fastfig.cli", *args], capture_output=True,
                          text=True, timeout=30, **kwargs)


def spawn(*args):
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc


def read_address(proc, marker):
    """The address after marker on the first line of proc's output that has it."""
    for _ in range(5):
        line = proc.stdout.readline()
        if marker in line and (marker != " on " or line.startswith("fastfig: serving")):
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
        address = read_address(server, " on ")
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


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"fastfig {fastfig.__version__}"


def busy_port():
    """A listening socket on 127.0.0.1 (close it after use) and its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


# (arguments after `serve SCRIPT`, what stderr must say): each a typical mistake.
MISTAKES = {
    "port out of range": (["--port", "70000"], "argument --port: port 70000 is outside 1-65535"),
    "port zero": (["--port", "0"], "argument --port: port 0 is outside 1-65535"),
    "port busy": (["--port", "{busy}"], "argument --port: port {busy} is in use"),
    "negative fps": (["--fps", "-5"], "argument --fps: must be a positive number, not -5"),
    "zero fps": (["--fps", "0"], "argument --fps: must be a positive number, not 0"),
    "address in use": (["--address", "tcp://127.0.0.1:{busy}"],
                       "argument --address: tcp://127.0.0.1:{busy} is in use"),
    "address not an address": (["--address", "localhost:5555"],
                               "argument --address: 'localhost:5555' is not an address"),
    "address reachable from the network": (["--address", "tcp://0.0.0.0:5555"],
                                           "--curve-secret FILE, or add --allow-remote"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_cli_mistakes_are_named_with_status_2(tmp_path, mistake):
    args, message = MISTAKES[mistake]
    script = tmp_path / "plot.py"
    script.write_text("print('the script ran')\n")
    sock, busy = busy_port()
    try:
        out = run_cli("serve", str(script), *[a.format(busy=busy) for a in args])
    finally:
        sock.close()
    assert out.returncode == 2, out
    assert message.format(busy=busy) in out.stderr
    assert "Traceback" not in out.stderr and "the script ran" not in out.stdout
    assert "allow_remote=" not in out.stderr and "curve_secret_key" not in out.stderr
    assert "http://" not in out.stdout      # no URL before the command line is checked


def test_no_script_names_only_the_script():
    out = run_cli("serve")
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == ("fastfig serve: error: the following arguments "
                                           "are required: script")


def test_missing_script_is_one_line(tmp_path):
    out = run_cli("serve", str(tmp_path / "nope.py"))
    assert out.returncode == 2
    assert out.stderr == f"fastfig serve: error: can't open file '{tmp_path / 'nope.py'}': " \
                         "no such file\n"
    assert out.stdout == ""


def test_a_failing_script_shows_its_own_traceback(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text(textwrap.dedent("""\
        import matplotlib.pyplot as plt

        def plot(data):
            return data["missing"]

        plt.figure()
        plot({})
    """))
    out = run_cli("serve", str(script))
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1] == f'  File "{script}", line 7, in <module>'
    assert f'  File "{script}", line 4, in plot' in lines
    assert lines[-1] == "KeyError: 'missing'"
    assert "runpy" not in out.stderr and "fastfig" not in out.stderr
    assert "Task was destroyed" not in out.stderr
    assert "http://" not in out.stdout      # its figure was never served


def test_a_script_syntax_error_and_exit_status(tmp_path):
    script = tmp_path / "syntax.py"
    script.write_text("x = (\n")
    out = run_cli("serve", str(script))
    assert out.returncode == 1
    assert f'File "{script}", line 1' in out.stderr and "SyntaxError" in out.stderr
    assert "runpy" not in out.stderr
    script.write_text("import sys\nprint('bye')\nsys.exit(3)\n")
    out = run_cli("serve", str(script))
    assert (out.returncode, out.stdout, out.stderr) == (3, "bye\n", "")


def test_refuses_remote_bind_in_cli_words(tmp_path):
    script = tmp_path / "empty.py"
    script.write_text("")
    out = run_cli("serve", str(script), "--address", "tcp://0.0.0.0:0")
    assert out.returncode == 2
    assert out.stderr.startswith("fastfig serve: error: argument --address: tcp://0.0.0.0:0 "
                                 "is reachable from other machines")
    assert "--allow-remote" in out.stderr and "allow_remote=" not in out.stderr


def test_url_once_served_and_quiet_sigterm(tmp_path):
    """The URL comes when the figures are served (after the script's own output), and
    SIGTERM ends it with status 0 and nothing on stderr (no asyncio noise)."""
    script = tmp_path / "plot.py"
    script.write_text("import matplotlib.pyplot as plt\nprint('made', flush=True)\n"
                      "plt.plot([1, 2])\nplt.show()\n")
    proc = spawn("serve", str(script))
    try:
        assert proc.stdout.readline() == "made\n"
        assert proc.stdout.readline().startswith("fastfig: serving 1 figure of plot.py on tcp://")
        assert proc.stdout.readline() == "fastfig: open the viewer at this URL:\n"
        url = proc.stdout.readline().strip()
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and err == "" and "http://" not in out
    finally:
        proc.kill()
        proc.wait()
