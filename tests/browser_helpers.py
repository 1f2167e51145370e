"""Shared by the browser tests and the browser benchmark: Debian's Chromium under
playwright, and reading a figure's canvas back out of the page.

Also a small viewer process to kill and restart (``python browser_helpers.py PORT TOKEN``):
a Server and a Bridge on fixed ports with one animated figure.
"""

import base64
import os
import shutil
import sys

import numpy as np

CHROMIUM = os.environ.get("FASTFIG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run",
                 # frames must keep coming when the headless window is not "focused"
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"]


def missing():
    """Why browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


READ_CANVAS = """(id) => {
  const v = window.fastfig.viewers.get(id);
  const c = v.canvas;
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let s = "";
  for (let i = 0; i < data.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  }
  // the frame on screen, which the image held may already have moved past
  return { width: c.width, height: c.height, seq: v.display.paintedSeq,
           epoch: v.display.paintedEpoch, rgba: btoa(s) };
}"""


def served_viewer():
    """A Server in its thread with the browser Bridge in front, for a pytest fixture to
    yield from: (server, bridge), both closed when the fixture ends."""
    from fastfig import Server
    from fastfig.web.bridge import Bridge
    server = Server.run_in_thread()
    bridge = Bridge.start_in(server)
    try:
        yield server, bridge
    finally:
        bridge.close()
        server.close()


def checked_page(browser, width, height, timeout=10000, **options):
    """A page for a pytest fixture to yield from: device pixel ratio 1, and any script
    error in it fails the test when the fixture ends."""
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=1, **options)
    page = context.new_page()
    page.set_default_timeout(timeout)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


def canvas_rgba(page, figure_id):
    """The figure's visible canvas as an (H, W, 4) uint8 array, with the seq it shows."""
    got = page.evaluate(READ_CANVAS, figure_id)
    rgba = np.frombuffer(base64.b64decode(got["rgba"]), np.uint8)
    return rgba.reshape(got["height"], got["width"], 4), got["seq"]


def viewer_value(page, figure_id, expression):
    """Evaluate expression with `v` bound to the figure's viewer (None if absent)."""
    return page.evaluate(
        f"(id) => {{ const v = window.fastfig && window.fastfig.viewers.get(id); "
        f"return v ? ({expression}) : null; }}", figure_id)


def wait_viewer(page, figure_id, condition, timeout=10000):
    """Wait until condition (JS, with `v` the viewer) holds; raises after timeout ms."""
    page.wait_for_function(
        f"(id) => {{ const v = window.fastfig && window.fastfig.viewers.get(id); "
        f"return !!v && !!({condition}); }}", arg=figure_id, timeout=timeout)


def _serve(port, token):
    """A viewer process for the restart test: figure "1" shows make_frame(i) at 30 fps."""
    import asyncio

    from fastfig import Server
    from fastfig.web.bridge import Bridge
    from transport_helpers import make_frame

    async def main():
        server = Server()
        await server.start()
        stream = server.add_figure("1", 160, 120, title="restartable")
        bridge = Bridge(server, port=port, token=token)
        await bridge.start()
        print("ready", bridge.url, flush=True)
        i = 0
        while True:
            stream.publish(make_frame(i, 160, 120))
            i += 1
            await asyncio.sleep(1 / 30)

    asyncio.run(main())


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    _serve(int(sys.argv[1]), sys.argv[2])
