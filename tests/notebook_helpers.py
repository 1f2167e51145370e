"""A real JupyterLab for the notebook tests and benchmark: a server on 127.0.0.1 (token,
no browser, a temporary root), notebooks written as files, and a page driven through
JupyterLab's own application object (``expose_app_in_browser``): open a notebook, run
its cells, run code in its kernel and read what it printed.
"""

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def missing():
    """Why notebook tests cannot run here, or None."""
    for module in ("jupyterlab", "anywidget", "ipykernel"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[test]')"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server in a subprocess, serving a temporary directory."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="fastfig-lab-")
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = os.path.join(self.root, ".settings")
        os.makedirs(os.path.join(settings, "@jupyterlab", "apputils-extension"))
        with open(os.path.join(settings, "@jupyterlab", "apputils-extension",
                               "notification.jupyterlab-settings"), "w") as f:
            json.dump({"fetchNews": "false", "checkForUpdates": False}, f)
        env = dict(os.environ, JUPYTER_CONFIG_DIR=os.path.join(self.root, ".jupyter"),
                   JUPYTERLAB_SETTINGS_DIR=settings,
                   JUPYTER_RUNTIME_DIR=os.path.join(self.root, ".runtime"),
                   MPLBACKEND="agg")
        self.log = open(os.path.join(self.root, ".lab.log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
             f"--port={self.port}", f"--ServerApp.root_dir={self.root}",
             f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True",
             "--ServerApp.port_retries=0", "--allow-root", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        self._wait_ready()

    def _wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {self.logtext()}")
            try:
                with urllib.request.urlopen(self.api_url("/api/status"), timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)   # the server is still starting: nothing to wait on
        raise RuntimeError(f"jupyter lab did not start: {self.logtext()}")

    def logtext(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def api_url(self, path):
        return f"{self.url}{path}?token={self.token}"

    def notebook_url(self, name):
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def write_notebook(self, name, cells):
        import nbformat    # with jupyterlab; the module imports without it (missing())
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, os.path.join(self.root, name))

    def read_notebook(self, name):
        with open(os.path.join(self.root, name)) as f:
            return json.load(f)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


# -- the page ---------------------------------------------------------------------------

def open_notebook(page, lab, name, timeout=60000):
    """Open name in JupyterLab and wait until its kernel is idle."""
    page.goto(lab.notebook_url(name))
    page.wait_for_function("""(name) => {
        const app = window.jupyterapp;
        if (!app) return false;
        const w = app.shell.currentWidget;
        if (!w || !w.context || !w.context.path.endsWith(name)) return false;
        const k = w.sessionContext.session && w.sessionContext.session.kernel;
        return !!k && k.status === "idle" && k.connectionStatus === "connected";
    }""", arg=name, timeout=timeout)


def run_all(page, timeout=60000):
    """Run every cell of the current notebook and wait until the kernel is idle again
    with every cell executed."""
    page.evaluate("""async () => {
        const app = window.jupyterapp;
        await app.commands.execute("notebook:run-all-cells");
    }""")
    wait_cells_done(page, timeout)


def run_cell(page, index, wait=True, timeout=60000):
    """Run cell number index; wait until it finished (wait=True) or started."""
    page.evaluate("""(index) => {
        const w = window.jupyterapp.shell.currentWidget;
        const cell = w.content.widgets[index];
        window.fastfigRunFrom = cell.model.executionCount;
        w.content.activeCellIndex = index;
        window.jupyterapp.commands.execute("notebook:run-cell");   // not awaited: runs on
    }""", index)
    page.wait_for_function("""(index) => {
        const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
        return (cell.promptNode.textContent || "").includes("*")
            || cell.model.executionCount !== window.fastfigRunFrom;
    }""", arg=index, timeout=timeout)
    if wait:
        wait_cells_done(page, timeout)


def wait_cells_done(page, timeout=60000):
    page.wait_for_function("""() => {
        const w = window.jupyterapp.shell.currentWidget;
        const k = w.sessionContext.session.kernel;
        if (!k || k.status !== "idle") return false;
        for (const cell of w.content.widgets) {
            if (cell.model.type === "code" && (cell.promptNode.textContent || "").includes("*")) return false;
        }
        return true;
    }""", timeout=timeout)


def kernel_eval(page, code, timeout=30000):
    """Run code in the notebook's kernel (not in a cell) and return what it printed."""
    return page.evaluate("""async ([code, timeout]) => {
        const w = window.jupyterapp.shell.currentWidget;
        const kernel = w.sessionContext.session.kernel;
        const future = kernel.requestExecute({ code, silent: false, store_history: false });
        let out = "", err = null;
        future.onIOPub = (msg) => {
            if (msg.header.msg_type === "stream") out += msg.content.text;
            if (msg.header.msg_type === "error") err = msg.content.ename + ": " + msg.content.evalue;
        };
        await Promise.race([future.done, new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), timeout))]);
        if (err) throw new Error(err);
        return out;
    }""", [code, timeout])


def save(page):
    page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")


def views(page):
    """The fastfig views in the page: [{uid, seq, width, height, veil}]."""
    return page.evaluate("""() => {
        const out = [];
        for (const el of document.querySelectorAll(".fastfig-figure")) {
            const c = el.querySelector("canvas.fastfig-image");
            const veil = el.querySelector(".fastfig-veil");
            out.push({ seq: el.dataset.seq ? Number(el.dataset.seq) : null, width: c.width,
                       height: c.height, veil: veil.hidden ? null : veil.textContent });
        }
        return out;
    }""")


@contextlib.contextmanager
def lab_server():
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()
