"""The process-wide fastfig runtime: one Server and the asyncio loop on which all
matplotlib work of served figures happens (drawing, events, timers, publishing).

Where that loop runs depends on the session, decided once, at first use:

- "host": an asyncio loop already runs in this thread (Jupyter, an asyncio app): fastfig
  schedules its work on it and never blocks.
- "script": no loop runs and the session is not interactive: fastfig owns a loop in this
  thread, which runs while ``plt.show()`` blocks, during ``plt.pause`` and
  ``canvas.start_event_loop``/``flush_events``. Timers started earlier fire once it runs.
- "prompt": IPython's terminal with its asyncio event loop integration, which the backend
  asks for (``%matplotlib fastfig``, or ``matplotlib.use("fastfig")`` then pyplot in
  IPython): the loop is IPython's own, which runs while the prompt waits for input, as
  Qt's loop does under ``%matplotlib qt``. A cell's code and the figures' drawing never
  overlap; ``plt.pause`` and a blocking ``plt.show()`` run the loop in this thread.
- "thread": an interactive prompt without such integration (``python -i``, IPython's
  ``--simple-prompt``): fastfig runs its loop in a daemon thread, where served figures are
  drawn; calls from the prompt's thread are handed over to it.

Configure it with ``configure(...)`` (``fastfig.configure`` for users) before the first
figure is served.
"""

import asyncio
import atexit
import os
import signal
import sys
import threading
import time

from ..transport.loopthread import call_in_loop, start_loop_thread
from ..transport.server import Server

#: Environment variable naming the address to serve on (as Server's address argument).
ADDRESS_ENV = "FASTFIG_ADDRESS"

_KEEP = object()


class Runtime:
    def __init__(self):
        self.address = os.environ.get(ADDRESS_ENV) or None
        self.server_options = {}
        self.fps = None             # target frame rate of figures that name none
        self.announce = True        # print where to connect when the first figure is
                                    # served (or a callable(count, address) that does)
        self.keep_serving = False   # run() without timeout serves until a signal or
                                    # stop(), even once no figure is left (demo, bench)
        self.mode = None
        self.loop = None
        self.server = None
        self.bridge = None          # the browser viewer (fastfig.web.bridge), once asked for
        self.thread_id = None
        self.canvases = []          # canvases being served, in the order they were shown
        self.closed = False
        self._announced = False
        self._thread = None
        self._stop = None
        self._until_closed = False              # the running run() ends when none is served
        self._none_served = threading.Event()   # for "thread" mode's blocking show
        self._none_served.set()
        self._notebook = None

    @property
    def notebook(self):
        """In a Jupyter kernel, the frontend that puts shown figures in the notebook
        (fastfig/notebook/kernel.py), else None; looked for once."""
        if self._notebook is None:
            from ..notebook.kernel import frontend
            self._notebook = frontend() or False
        return self._notebook or None

    def configure(self, *, address=_KEEP, server_options=_KEEP, fps=_KEEP, announce=_KEEP,
                  keep_serving=_KEEP):
        """Set how this process serves, in one call. address and server_options (Server's
        arguments: curve, allow_remote, ...) only before the server started; fps: target
        frame rate of figures that name none (None: as fast as frontends take frames);
        announce: True to print the viewer's URL when the first figure is served, False,
        or a callable(count, address); keep_serving: run() serves until a signal even
        once every figure is closed."""
        if self.server is not None and (address is not _KEEP or server_options is not _KEEP):
            raise RuntimeError(f"fastfig already serves at {self.server.address}")
        if address is not _KEEP:
            self.address = address
        if server_options is not _KEEP:
            self.server_options = dict(server_options or {})
        if fps is not _KEEP:
            if fps is not None and not fps > 0:
                raise ValueError(f"fps must be a positive number, not {fps!r}")
            self.fps = fps
        if announce is not _KEEP:
            self.announce = announce
        if keep_serving is not _KEEP:
            self.keep_serving = bool(keep_serving)

    # -- the loop -------------------------------------------------------------------------

    def ensure_loop(self, mode=None):
        """The loop, created on first use; mode forces "thread" or "script" then."""
        if self.loop is not None:
            return self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        prompt_loop = integrate_ipython() if mode is None and running is None else None
        if running is not None and mode is None:
            self.mode, self.loop, self.thread_id = "host", running, threading.get_ident()
        elif prompt_loop is not None:
            self.mode, self.loop, self.thread_id = "prompt", prompt_loop, threading.get_ident()
        elif mode == "thread" or (mode is None and _interactive_prompt()):
            self.mode = "thread"
            self._thread, self.loop = start_loop_thread("fastfig", _nothing, lambda: None)
            self.thread_id = self._thread.ident
        else:
            self.mode, self.loop = "script", asyncio.new_event_loop()
            self.thread_id = threading.get_ident()
        return self.loop

    def in_loop_thread(self):
        return threading.get_ident() == self.thread_id

    def _loop_gone(self):
        """True once the loop's thread has ended ("thread" mode, at exit): work is then
        done in the caller's thread, nothing else runs."""
        return self._thread is not None and not self._thread.is_alive()

    def _current(self):
        """Make the loop this thread's current one where it is ours and not running
        ("script", "prompt"): pyzmq's asyncio sockets make their futures on the current
        loop, also for a send made from a cell or the script between two runs, and a
        user's asyncio.run() in between leaves none."""
        if self.mode in ("script", "prompt") and not self.loop.is_running():
            asyncio.set_event_loop(self.loop)

    def call_soon(self, fn, *args):
        """Run fn(*args) on the loop's thread: now if this is that thread."""
        loop = self.ensure_loop()
        if self.in_loop_thread() or self._loop_gone():
            self._current()
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def call(self, fn, *args, **kwargs):
        """Run fn on the loop's thread and return its result."""
        loop = self.ensure_loop()
        if self.in_loop_thread() or self._loop_gone():
            self._current()
            return fn(*args, **kwargs)
        return call_in_loop(loop, fn, *args, timeout=60, **kwargs)

    def ensure_server(self):
        if self.server is not None:
            return self.server
        if self.closed:
            raise RuntimeError("the fastfig runtime is closed (the process is exiting)")
        loop = self.ensure_loop()
        self._current()
        server = Server(self.address, **self.server_options)
        if self.mode in ("script", "prompt") and not loop.is_running():
            loop.run_until_complete(server.start())
        elif self.mode == "thread":
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        else:
            _run_sync(server.start())
        self.server = server
        atexit.register(self.close)
        return server

    def ensure_bridge(self, **options):
        """The browser viewer for this runtime's server (started on first use; options as
        fastfig.web.bridge.Bridge's). ``.url`` is the page to open. It runs in a thread of
        its own and reaches the server over ZeroMQ, so drawing never stalls the page."""
        if self.bridge is not None:
            return self.bridge
        from ..web.bridge import Bridge
        server = self.ensure_server()
        # In a script the server's loop runs only while the script blocks (plt.show):
        # the bridge serves the page at once and greets the server when it answers.
        self.bridge = Bridge(server, **options).start_thread(wait_for_server=False)
        return self.bridge

    # -- figures ---------------------------------------------------------------------------

    def figure_served(self, canvas):
        if canvas not in self.canvases:
            self.canvases.append(canvas)
            self._none_served.clear()

    def figure_closed(self, canvas):
        if canvas in self.canvases:
            self.canvases.remove(canvas)
        if not self.canvases:
            self._none_served.set()
            if self._until_closed:
                self.stop()

    def announce_once(self, blocking=False):
        """Say where the figures are served, the first time a figure is shown."""
        if self._announced or not self.announce or self.server is None:
            return
        self._announced = True
        n = len(self.canvases)
        if callable(self.announce):
            self.announce(n, self.server.address)
            return
        bridge = self.ensure_bridge()
        stop = " (Ctrl-C to stop)" if blocking else ""
        print(f"fastfig: serving {n} figure{'s' if n != 1 else ''} at {self.server.address}"
              f"{stop}; open {'them' if n != 1 else 'it'} in a browser at:", flush=True)
        print(bridge.url, flush=True)

    # -- running -----------------------------------------------------------------------------

    def can_block(self):
        return self.mode in ("script", "prompt") and not self.loop.is_running()

    def run(self, timeout=None, until_closed=None):
        """Run the loop in this thread for timeout seconds, or until stop() is called,
        every served figure is closed (until_closed; default: unless keep_serving),
        Ctrl-C (KeyboardInterrupt is raised) or SIGTERM (SystemExit is raised).
        In "thread" mode the loop runs anyway: this waits the same way."""
        loop = self.ensure_loop()
        if until_closed is None:
            until_closed = not self.keep_serving
        if self.canvases:
            self.announce_once(blocking=timeout is None)
        if not self.can_block():
            if timeout:
                time.sleep(timeout)
            elif until_closed and self.mode == "thread":
                self._none_served.wait()
            return
        if timeout is None and until_closed and not self.canvases:
            return
        stop = self._stop = loop.create_future()
        self._until_closed = until_closed and timeout is None
        timer = loop.call_later(timeout, self.stop) if timeout is not None else None
        # SIGTERM ends the wait with SystemExit, Ctrl-C with KeyboardInterrupt, both
        # through the loop's own signal handling (its wakeup pipe is watched by the
        # selector): Python's default SIGINT handler raised only once the main thread
        # ran bytecode again, and one Ctrl-C in a blocking plt.show() at IPython's prompt
        # was lost in 2 of 3 CI runs (test_ipython_ion_and_fastfig_show).
        caught = []
        installed = []
        if threading.current_thread() is threading.main_thread():
            for sig, default in ((signal.SIGTERM, (signal.SIG_DFL, None)),
                                 (signal.SIGINT, (signal.default_int_handler,))):
                if signal.getsignal(sig) not in default:
                    continue   # somebody else's handler: theirs to handle
                try:
                    loop.add_signal_handler(sig, lambda s=sig: (caught.append(s), self.stop()))
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        # Not run_until_complete: when an exception (a signal handler's, a callback's)
        # left the loop after the stop future was done but before its callback ran, that
        # callback stayed queued and stopped the loop's next run (fastfig serve's exit
        # then failed: "Event loop stopped before Future completed"). This run's stop
        # callback does nothing once the run is over.
        running = [True]
        stop.add_done_callback(lambda _: running[0] and loop.stop())
        try:
            loop.run_forever()
        finally:
            running[0] = False
            if timer is not None:
                timer.cancel()      # an interrupted pause must not end a later run
            self._stop = None
            self._until_closed = False
            for sig in installed:
                loop.remove_signal_handler(sig)   # SIGINT: back to default_int_handler
        if signal.SIGTERM in caught:
            raise SystemExit(0)
        if signal.SIGINT in caught:
            raise KeyboardInterrupt

    def stop(self):
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def close(self):
        """Stop serving (frontends are told each figure closed), then close the viewer,
        the server and the loop fastfig owns. Runs at exit before matplotlib closes its
        figures, which then find nothing left to do. Returns the exceptions met (each
        step is tried whatever the one before did)."""
        if self.closed:
            return []
        self.closed = True
        errors = []

        def attempt(fn, *args):
            try:
                fn(*args)
            except Exception as e:
                errors.append(e)

        server, self.server = self.server, None
        bridge, self.bridge = self.bridge, None
        if server is not None:
            self._on_loop(attempt, self._close_figures)
        if bridge is not None:
            attempt(bridge.close)
        if server is not None:
            self._on_loop(attempt, server.close)
        if self.mode == "thread" and not self._loop_gone():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        elif self.mode in ("script", "prompt"):
            _finish_tasks(self.loop)
        return errors

    def _on_loop(self, fn, *args):
        """fn(*args) on the loop's thread, inside the running loop where this thread owns
        it and it is idle: what closing sends then goes out through the loop, not
        around it."""
        if self.loop is None or self._loop_gone() or self.loop.is_closed():
            fn(*args)
        elif self.mode in ("script", "prompt") and not self.loop.is_running():
            async def inside():
                fn(*args)
            self.loop.run_until_complete(inside())
        else:
            self.call(fn, *args)

    def _close_figures(self):
        for canvas in list(self.canvases):
            canvas._stop_serving()


async def _nothing():
    pass


def _finish_tasks(loop):
    """Cancel what is left on a loop this thread owns and let it end, so that nothing
    is reported destroyed while pending at exit."""
    if loop.is_running() or loop.is_closed():
        return
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _interactive_prompt():
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    try:
        return ipython is not None and ipython.get_ipython() is not None
    except Exception:
        return False


def integrate_ipython():
    """In IPython's terminal, turn on its asyncio event loop integration (the prompt then
    waits for input on IPython's asyncio loop, running it, as ``%gui asyncio`` does) and
    return that loop, on which fastfig then serves. None elsewhere, and when another
    integration (``%gui qt``, ...) is on or the prompt is --simple-prompt.

    The backend does this when it is imported too: ``%matplotlib fastfig`` then finds an
    event loop hook running and does not print "No event loop hook running." (matplotlib
    names no framework for this backend: pyplot would refuse any framework name on a
    machine without a display). That magic turns the hook off again at its end; the first
    figure turns it back on, through here."""
    if "IPython.terminal.interactiveshell" not in sys.modules:
        return None
    from IPython import get_ipython
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    shell = get_ipython()
    if not isinstance(shell, TerminalInteractiveShell) or shell.simple_prompt:
        return None
    if shell.active_eventloop is None:
        shell.enable_gui("asyncio")
    if shell.active_eventloop != "asyncio":
        return None
    from IPython.core.async_helpers import get_asyncio_loop
    return get_asyncio_loop()


def _run_sync(coro):
    """Run a coroutine that never suspends (Server.start) to completion, here."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("coroutine suspended")


_runtime = None


def get():
    """The process's Runtime."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def configure(**options):
    """Configure the process's Runtime (see Runtime.configure)."""
    get().configure(**options)
