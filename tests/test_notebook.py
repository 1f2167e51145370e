"""fastfig in a real JupyterLab, driven by playwright in Debian's Chromium: figures show as
live views whose pixels are the kernel's, a loop in a running cell is seen while it runs,
an animation plays while other cells run, a drag-zoom in the page zooms the kernel's
axes, the saved notebook holds each figure's image/png, a kernel restart shows on the
view, and closed figures leave nothing behind."""

import base64
import json

import pytest

from browser_helpers import missing as browser_missing
from notebook_helpers import missing as notebook_missing

pytestmark = pytest.mark.skipif(bool(browser_missing() or notebook_missing()),
                                reason=str(browser_missing() or notebook_missing()))

SETUP = "%matplotlib fastfig\nimport matplotlib.pyplot as plt, numpy as np"
PLOT = ("fig, ax = plt.subplots(figsize=(6, 4))\n"
        "x = np.linspace(0, 4 * np.pi, 400)\n"
        "(line,) = ax.plot(x, np.sin(x))\n"
        "plt.show()")

# Stops `anim`: its timer, or the timeline player that took it over (fastfig/mpl/animation.py).
STOP_ANIMATION = ("anim.event_source.stop()\n"
                  "fig.canvas.handle_event({'type': 'timeline', 'action': 'pause'})")

# The kernel's image of a figure and its seq, and the page's, as hashes of the RGBA bytes.
KERNEL_IMAGE = ("import hashlib, json\n"
                "print(json.dumps([fig.canvas.stream.seq, "
                "hashlib.sha256(bytes(fig.canvas.buffer_rgba())).hexdigest()]))")
PAGE_IMAGE = """async (index) => {
    const el = document.querySelectorAll(".fastfig-figure")[index];
    const c = el.querySelector("canvas.fastfig-image");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const digest = await crypto.subtle.digest("SHA-256", data);
    const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    return [Number(el.dataset.seq), hex];
}"""


@pytest.fixture(scope="module")
def lab():
    from notebook_helpers import lab_server
    with lab_server() as server:
        yield server


@pytest.fixture(scope="module")
def page(lab, browser):
    """The JupyterLab page; a script error of fastfig's in it fails the tests (JupyterLab's
    own, such as a request cancelled by a kernel shutdown, do not)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900},
                                  device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(60000)
    errors = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    yield page
    context.close()
    ours = [e for e in errors if "fastfig" in e or "blob:" in e]
    assert not ours, f"errors in the page: {ours}"


@pytest.fixture
def notebook(lab, page, request):
    """A notebook named after the test with the given cells, open and idle; its kernel is
    shut down afterwards."""
    import notebook_helpers as nh
    opened = []

    def make(*cells):
        name = f"{request.node.name}.ipynb"
        lab.write_notebook(name, list(cells))
        nh.open_notebook(page, lab, name)
        opened.append(name)
        return name

    yield make
    if opened:
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")


def _wait_in_sync(page, index=0, timeout=20000):
    """Wait until view index shows the kernel's newest image; return both hashes."""
    import notebook_helpers as nh
    page.wait_for_function("(i) => { const e = document.querySelectorAll('.fastfig-figure')[i];"
                           " return e && e.dataset.seq; }", arg=index, timeout=timeout)
    for _ in range(50):
        seq, kernel_hash = json.loads(nh.kernel_eval(page, KERNEL_IMAGE))
        page.wait_for_function(
            "([i, seq]) => Number(document.querySelectorAll('.fastfig-figure')[i].dataset.seq) >= seq",
            arg=[index, seq], timeout=timeout)
        shown_seq, page_hash = page.evaluate(PAGE_IMAGE, index)
        if shown_seq == seq:
            return kernel_hash, page_hash
    raise AssertionError("the view never settled on the kernel's image")


def test_plot_shows_the_kernels_pixels_and_the_saved_notebook_keeps_them(lab, page, notebook):
    import notebook_helpers as nh
    name = notebook(SETUP, PLOT)
    nh.run_all(page)
    kernel_hash, page_hash = _wait_in_sync(page)
    assert page_hash == kernel_hash
    nh.save(page)
    saved = lab.read_notebook(name)
    outputs = saved["cells"][1]["outputs"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1 and "application/vnd.jupyter.widget-view+json" in pngs[0]["data"]
    png = base64.b64decode(pngs[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG")


def test_a_loop_in_a_running_cell_is_seen_while_it_runs(page, notebook):
    import notebook_helpers as nh
    # The figure is made and shown by the looping cell itself: the page can say nothing
    # to the kernel (join, credit) until the cell ends.
    notebook(SETUP, "import time\n" + PLOT + "\nend = time.monotonic() + 3\ni = 0\n"
             "while time.monotonic() < end:\n"
             "    i += 1\n"
             "    line.set_ydata(np.sin(x + i / 10))\n"
             "    fig.canvas.draw_idle()\n"
             "    fig.canvas.flush_events()\n"
             "    time.sleep(0.01)")
    nh.run_cell(page, 0)
    page.evaluate("""() => {
        window.seen = new Set();
        const tick = () => {
            const cell = window.jupyterapp.shell.currentWidget.content.widgets[1];
            const running = (cell.promptNode.textContent || "").includes("*");
            const el = document.querySelector(".fastfig-figure[data-seq]");
            if (el && running) window.seen.add(el.dataset.seq);
            if (window.sampling) requestAnimationFrame(tick);
        };
        window.sampling = true;
        requestAnimationFrame(tick);
    }""")
    nh.run_cell(page, 1, wait=False)
    nh.wait_cells_done(page)
    page.evaluate("() => { window.sampling = false; }")
    distinct = page.evaluate("() => window.seen.size")
    # The kernel sends one frame per flush_events as long as the page has room or the busy
    # budget (30/s) lends it: on an idle machine >= 20 in 3 s, on a loaded one as many as
    # the loop could draw; the page must have shown nearly all of them during the cell.
    sent = int(nh.kernel_eval(page, "from fastfig.mpl import runtime\n"
                                    "print(runtime.get().notebook.widgets()[0].flow.busy_sent)"))
    print(f"running cell: {distinct} images seen, {sent} sent")
    assert distinct >= min(20, 0.7 * sent) and distinct >= 5, \
        f"{distinct} distinct images while the cell ran, {sent} sent"


def test_a_widget_as_a_cells_last_expression_is_one_view_and_stays_live(page, notebook):
    """fastfig.widget(fig) is an ipywidget: it shows where it is displayed, once, not
    also as the figure's own view in the cell's output; a later cell's loop (draw_idle,
    flush_events) updates it, and no second view appears there."""
    import notebook_helpers as nh
    notebook(SETUP, "import fastfig\n" + PLOT.replace("plt.show()", "fastfig.widget(fig)"),
             "import time\n"
             "for i in range(40):\n"
             "    line.set_ydata(np.sin(x + i / 10))\n"
             "    fig.canvas.draw_idle()\n"
             "    fig.canvas.flush_events()\n"
             "    time.sleep(0.02)")
    nh.run_cell(page, 0)
    nh.run_cell(page, 1)
    kernel_hash, page_hash = _wait_in_sync(page)
    assert page_hash == kernel_hash
    assert len(nh.views(page)) == 1
    nh.run_cell(page, 2)
    kernel_hash, page_hash = _wait_in_sync(page)
    assert page_hash == kernel_hash
    assert len(nh.views(page)) == 1


def test_animation_plays_while_other_cells_run(page, notebook):
    import notebook_helpers as nh
    notebook(SETUP, PLOT,
             "from matplotlib.animation import FuncAnimation\n"
             "anim = FuncAnimation(fig, lambda i: line.set_ydata(np.sin(x + i / 10)) or [line],"
             " interval=20, blit=True, cache_frame_data=False)")
    nh.run_all(page)
    seq = lambda: page.evaluate("() => Number(document.querySelector('.fastfig-figure').dataset.seq)")
    first = seq()
    assert nh.kernel_eval(page, "print(6 * 7)").strip() == "42"   # the kernel answers
    page.wait_for_function(f"() => Number(document.querySelector('.fastfig-figure').dataset.seq) > {first + 10}")
    nh.kernel_eval(page, "anim.event_source.stop()")


def test_drag_zoom_in_the_page_zooms_the_kernels_axes(page, notebook):
    import notebook_helpers as nh
    notebook(SETUP, PLOT)
    nh.run_all(page)
    _wait_in_sync(page)
    before = json.loads(nh.kernel_eval(page, "import json; print(json.dumps(ax.get_xlim()))"))
    page.click(".fastfig-figure button[data-tool=zoom]")
    page.wait_for_selector(".fastfig-figure button[data-tool=zoom].fastfig-active")
    box = page.locator(".fastfig-figure canvas.fastfig-overlay").bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + box["width"] * 0.2, y0 + box["height"] * 0.2, steps=5)
    page.mouse.up()
    for _ in range(100):
        after = json.loads(nh.kernel_eval(page, "print(json.dumps(ax.get_xlim()))"))
        if after != before:
            break
        page.wait_for_timeout(50)   # the release goes to the kernel as a comm message
    assert after[1] - after[0] < (before[1] - before[0]) * 0.5, (before, after)


def test_kernel_restart_shows_on_the_view(page, notebook):
    import notebook_helpers as nh
    notebook(SETUP, PLOT)
    nh.run_all(page)
    _wait_in_sync(page)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    page.wait_for_function("() => { const v = document.querySelector('.fastfig-figure .fastfig-veil');"
                           " return v && !v.hidden && v.textContent.includes('kernel'); }")


def test_closed_figures_leave_no_comm_thread_or_timer(page, notebook):
    import notebook_helpers as nh
    notebook(SETUP, "import threading, comm\n"
                    "from fastfig.mpl import runtime\n"
                    "fe = runtime.get().notebook\n"
                    "def census():\n"
                    "    return (len(comm.get_comm_manager().comms), threading.active_count(),\n"
                    "            len(fe.widgets()), fe._png_timer is not None)\n"
                    # Warm-up: what the first shown figures start once for the kernel's
                    # life (an executor thread, say) is not a per-figure leak.
                    "for i in range(10):\n"
                    "    f = plt.figure(figsize=(2, 2)); plt.show(); plt.close(f)\n",
             "before = census()",
             "for i in range(100):\n"
             "    f = plt.figure(figsize=(2, 2)); f.add_subplot().plot([0, i]); plt.show()\n"
             "    plt.close(f)")
    nh.run_all(page)
    after = nh.kernel_eval(page, "import gc; gc.collect(); print(json.dumps([before, census()]))"
                           .replace("json.dumps", "__import__('json').dumps"))
    before, after = json.loads(after)
    assert after[0] <= before[0], f"comms left: {before} -> {after}"
    assert after[1] <= before[1], f"threads left: {before} -> {after}"
    assert after[2] == 0 and after[3] is False, f"widgets or timer left: {after}"


def test_rerunning_a_cell_frees_the_figures_of_its_last_run(page, notebook):
    import notebook_helpers as nh
    notebook(SETUP, PLOT)
    nh.run_all(page)
    _wait_in_sync(page)
    nh.run_cell(page, 1)
    census = nh.kernel_eval(page, "from fastfig.mpl import runtime\n"
                                  "print(len(plt.get_fignums()), len(runtime.get().notebook.widgets()))")
    assert census.split() == ["1", "1"]
    _wait_in_sync(page)


def test_two_views_save_and_keys_only_while_focused(page, notebook):
    import notebook_helpers as nh
    notebook(SETUP, PLOT + "\nkeys = []\n"
             "fig.canvas.mpl_connect('key_press_event', lambda e: keys.append(e.key))",
             "display(fig)")
    nh.run_all(page)
    kernel_hash, first = _wait_in_sync(page, 0)
    _, second = _wait_in_sync(page, 1)
    assert first == second == kernel_hash    # one figure, two views, the same pixels

    figure = page.locator(".fastfig-figure").first
    figure.locator("select.fastfig-format").select_option("svg")
    with page.expect_download() as download:
        figure.locator("button[data-tool=download]").click()
    assert download.value.suggested_filename.endswith(".svg")
    with open(download.value.path(), "rb") as f:
        assert b"<svg" in f.read(4096)

    cells = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length")
    box = figure.locator("canvas.fastfig-overlay").bounding_box()
    page.mouse.click(box["x"] + 5, box["y"] + 5)          # focus the figure
    page.keyboard.press("a")                             # a notebook shortcut elsewhere
    page.click(".jp-Notebook .jp-Cell .jp-InputPrompt >> nth=0")   # focus leaves the figure
    page.keyboard.press("k")
    for _ in range(100):
        keys = nh.kernel_eval(page, "print(','.join(keys))").strip()
        if keys:
            break
        page.wait_for_timeout(50)   # the key goes to the kernel as a comm message
    assert keys == "a"
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length") == cells


def test_a_view_out_of_sight_pauses_its_figure_and_resumes_with_the_newest_image(page, notebook):
    import notebook_helpers as nh
    notebook(SETUP, PLOT,
             "from matplotlib.animation import FuncAnimation\n"
             "anim = FuncAnimation(fig, lambda i: line.set_ydata(np.sin(x + i / 10)) or [line],"
             " interval=20, blit=True, cache_frame_data=False)\n"
             "fig.canvas.draw_idle()",
             "print('\\n'.join(map(str, range(300))))")
    nh.run_all(page)
    frames = lambda: int(nh.kernel_eval(page, "print(fig.canvas._frames.frames)"))
    # the figure's nearest scrolling ancestor (the notebook's scroller)
    scroll = """(y) => {
        let n = document.querySelector(".fastfig-figure").parentElement;
        while (n && !(n.scrollHeight > n.clientHeight && /auto|scroll/.test(getComputedStyle(n).overflowY))) {
            n = n.parentElement;
        }
        n.scrollTop = y;
    }"""
    page.evaluate(scroll, 10 ** 6)                      # the figure out of sight
    page.wait_for_function("() => [...window.fastfigNotebook.figures.values()][0].visible === false")
    page.wait_for_timeout(1000)                         # frames already on their way land
    paused = frames()
    page.wait_for_timeout(1000)
    # At most a window of frames, plus one per credit that was on its way back when the
    # view went out of sight; a figure still rendering makes ~50 in this second.
    from fastfig.notebook.flow import WINDOW
    more = frames() - paused
    assert more <= 2 * WINDOW, f"{more} frames rendered for a view out of sight"
    page.evaluate(scroll, 0)
    newest = int(nh.kernel_eval(page, "print(fig.canvas.stream.seq)"))
    seq = "() => Number(document.querySelector('.fastfig-figure').dataset.seq)"
    page.wait_for_function(f"() => ({seq})() >= {newest}")   # back: the newest image
    page.wait_for_function(f"() => ({seq})() > {newest + 5}")   # and live again
    assert page.evaluate("() => document.querySelectorAll('.fastfig-figure').length") == 1


def test_hidpi_pages_get_the_figure_at_their_pixel_density(lab, browser):
    import notebook_helpers as nh
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(60000)
    try:
        lab.write_notebook("hidpi.ipynb", [SETUP, PLOT])
        nh.open_notebook(page, lab, "hidpi.ipynb")
        nh.run_all(page)
        page.wait_for_function("() => { const c = document.querySelector('.fastfig-figure canvas.fastfig-image');"
                               " return c && c.width === 1200; }")
        css = page.evaluate("() => document.querySelector('.fastfig-figure canvas.fastfig-image')"
                            ".getBoundingClientRect().width")
        assert round(css) == 600        # drawn at 2 pixels per CSS pixel, shown at its size
        kernel_hash, page_hash = _wait_in_sync(page)
        assert page_hash == kernel_hash
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    finally:
        context.close()


def test_a_notebook_open_in_two_tabs_is_live_in_both(lab, page, browser, notebook):
    """The second tab opens the saved notebook: its widget manager restores the figure's
    model from the kernel and joins; both tabs then show the kernel's images as they
    change (every page receives every frame; the one that joined last returns credit)."""
    import notebook_helpers as nh
    name = notebook(SETUP, PLOT,
                    "from matplotlib.animation import FuncAnimation\n"
                    "anim = FuncAnimation(fig, lambda i: line.set_ydata(np.sin(x + i / 10)) or [line],"
                    " interval=20, blit=True, cache_frame_data=False)\n"
                    "fig.canvas.draw_idle()")
    nh.run_all(page)
    nh.save(page)
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    second = context.new_page()
    second.set_default_timeout(60000)
    errors = []
    second.on("pageerror", lambda e: errors.append(str(e)))
    try:
        nh.open_notebook(second, lab, name)
        seq = "() => Number((document.querySelector('.fastfig-figure') || {dataset: {}}).dataset.seq || -1)"
        for tab in (page, second):
            start = tab.evaluate(seq)
            tab.wait_for_function(f"() => ({seq})() > Math.max({start}, 0) + 10")   # moving
        nh.kernel_eval(page, STOP_ANIMATION)
        for tab in (second, page):
            kernel_hash, page_hash = _wait_in_sync(tab)
            assert page_hash == kernel_hash
    finally:
        context.close()
    assert not [e for e in errors if "fastfig" in e or "blob:" in e], errors


def test_a_frontend_that_drops_binary_buffers_gets_base64_frames_with_the_same_pixels(page, notebook):
    import notebook_helpers as nh
    notebook(SETUP, PLOT)
    nh.run_all(page)
    _wait_in_sync(page)
    # From now on this page's frame messages arrive without their buffer, as in a
    # frontend that drops them: the view asks for base64 and decodes those.
    page.evaluate("""() => {
        const fig = [...window.fastfigNotebook.figures.values()].pop();
        const onMessage = fig.onMessage.bind(fig);
        fig.onMessage = (msg, buffers) => onMessage(msg, []);
    }""")
    nh.kernel_eval(page, "line.set_ydata(np.cos(x)); fig.canvas.draw_idle()")
    page.wait_for_function("() => [...window.fastfigNotebook.figures.values()].pop().base64")
    nh.kernel_eval(page, "line.set_ydata(np.cos(2 * x)); fig.canvas.draw_idle()")
    kernel_hash, page_hash = _wait_in_sync(page)
    assert page_hash == kernel_hash
    assert nh.kernel_eval(page, "from fastfig.mpl import runtime\n"
                                "print(runtime.get().notebook.widgets()[0].base64)").strip() == "True"
