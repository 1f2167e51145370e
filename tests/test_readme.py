"""Every ```python block of README.md runs as pasted (issue 11: the codec example stopped
with a NameError). Blocks are taken from the README each run, and each is one of:

- a script: run with python, it must exit 0;
- a script that serves (selects the backend and blocks in plt.show()): run, its frames
  reach a Client, SIGTERM ends it with status 0;
- a client of a server (it names tcp://127.0.0.1:PORT): run against a real
  `fastfig serve` started here, PORT replaced by the port it serves on;
- an IPython cell (it starts with a %magic): run in an IPython shell;
- a fragment, named below with what it leaves out: not run.

A block of no known kind fails the test, so a new README example gets classified.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastfig import Client

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)

#: Blocks that continue a story told elsewhere, by a phrase they hold: what they lack.
FRAGMENTS: dict = {}
TIMEOUT = 120


def kind(block):
    if any(phrase in block for phrase in FRAGMENTS):
        return "fragment"
    if "tcp://127.0.0.1:PORT" in block:
        return "client"
    if block.lstrip().startswith("%"):
        return "ipython"
    if 'matplotlib.use("fastfig")' in block and "plt.show()" in block:
        return "serves"
    return "script"


def blocks(of_kind):
    return [pytest.param(b, id=f"block{i}") for i, b in enumerate(BLOCKS) if kind(b) == of_kind]


def run(args, **kwargs):
    env = dict(os.environ, FASTFIG_ADDRESS="tcp")
    env.pop("MPLBACKEND", None)
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                          **kwargs)


def test_readme_has_its_examples():
    kinds = [kind(b) for b in BLOCKS]
    for expected in ("script", "serves", "client", "ipython"):
        assert expected in kinds, f"no {expected} block in README.md: did the parser break?"
    assert kinds.count("fragment") <= len(FRAGMENTS)


@pytest.mark.parametrize("block", blocks("script"))
def test_script_blocks_run_as_pasted(block, tmp_path):
    out = run([sys.executable, "-c", block], cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("block", blocks("serves"))
def test_serving_blocks_serve_until_sigterm(block, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(block)
    env = dict(os.environ, FASTFIG_ADDRESS="tcp")
    env.pop("MPLBACKEND", None)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.startswith("fastfig: serving"), line + proc.stderr.read()
        address = re.search(r"(tcp://\S+?);?\s", line).group(1)
        assert proc.stdout.readline().startswith("http://127.0.0.1:")   # the viewer's URL
        with Client(address, "1", timeout=30) as c:
            images = []
            while len(images) < 3:           # an animation: frames that differ
                f = c.next_frame(timeout=30)
                assert f is not None
                if not images or not np.array_equal(images[-1], f.image):
                    images.append(f.image.copy())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        proc.kill()
        proc.wait()


STATIC = textwrap.dedent("""
    import matplotlib.pyplot as plt
    plt.plot([0, 1, 2], [0, 1, 0])
    plt.show()
""")


@pytest.fixture
def fastfig_serve(tmp_path):
    """A real `fastfig serve` of a static figure (figure 1, 640x480): its address."""
    script = tmp_path / "static.py"
    script.write_text(STATIC)
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "serve", str(script),
                             "--no-viewer"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("fastfig: serving"), line + proc.stderr.read()
        yield line.split(" on ")[1].split()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("block", blocks("client"))
def test_client_blocks_run_against_fastfig_serve(block, fastfig_serve, tmp_path):
    port = fastfig_serve.rsplit(":", 1)[1]
    out = run([sys.executable, "-c", block.replace("PORT", port)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "(480, 640, 4)" in out.stdout      # the figure's frame, decoded


@pytest.mark.parametrize("block", blocks("ipython"))
def test_ipython_blocks_run_in_ipython(block, tmp_path):
    """A notebook cell, run by IPython's own shell (`ipython -c`): outside a kernel the
    figure is served as from a prompt."""
    pytest.importorskip("IPython")
    out = run([sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "-c",
               block], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
