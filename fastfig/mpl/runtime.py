"""The process-wide fastfig runtime: one Server and the asyncio loop on which all
matplotlib work of served figures happens (drawing, events, timers, publishing).

Where that loop runs depends on the session, decided once, at first use:

- "host": an asyncio loop already runs in this thread (Jupyter, an asyncio app): fastfig
  schedules its work on it and never blocks.
- "script": no loop runs and the session is not interactive: fastfig owns a loop in this
  thread, which runs while ``plt.show()`` blocks, during ``plt.pause`` and
  ``canvas.start_event_loop``/``flush_events``. Timers started earlier fire once it runs.
- "thread": an interactive prompt without a loop (python -i, IPython's terminal):
  fastfig runs its loop in a daemon thread, where served figures are drawn; calls from
  the prompt's thread are handed over to it.
"""

import asyncio
import atexit
import concurrent.futures
import os
import signal
import sys
import threading

from ..transport.server import Server, call_in_loop

#: Environment variable naming the address to serve on (as Server's address argument).
ADDRESS_ENV = "FASTFIG_ADDRESS"


class Runtime:
    def __init__(self):
        self.address = os.environ.get(ADDRESS_ENV) or None
        self.server_options = {}
        self.mode = None
        self.loop = None
        self.server = None
        self.bridge = None          # the browser viewer (fastfig.bridge), once asked for
        self.thread_id = None
        self.canvases = []          # canvases being served, in the order they were shown
        self.announce = True        # print where to connect when show() blocks (or a
                                    # callable(count, address) that does)
        self.keep_serving = False   # show() blocks until a signal even with no figures
        self._thread = None
        self._stop = None

    # -- the loop -------------------------------------------------------------------------

    def ensure_loop(self, mode=None):
        """The loop, created on first use; mode forces "thread" or "script" then."""
        if self.loop is not None:
            return self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and mode is None:
            self.mode, self.loop, self.thread_id = "host", running, threading.get_ident()
        elif mode == "thread" or (mode is None and _interactive_prompt()):
            self.mode = "thread"
            ready = concurrent.futures.Future()
            self._thread = threading.Thread(target=self._thread_main, args=(ready,),
                                            name="fastfig", daemon=True)
            self._thread.start()
            self.loop = ready.result(timeout=30)
        else:
            self.mode, self.loop = "script", asyncio.new_event_loop()
            self.thread_id = threading.get_ident()
        return self.loop

    def _thread_main(self, ready):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.thread_id = threading.get_ident()
        ready.set_result(loop)
        loop.run_forever()

    def in_loop_thread(self):
        return threading.get_ident() == self.thread_id

    def call_soon(self, fn, *args):
        """Run fn(*args) on the loop's thread: now if this is that thread."""
        loop = self.ensure_loop()
        if self.in_loop_thread():
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def call(self, fn, *args, **kwargs):
        """Run fn on the loop's thread and return its result."""
        loop = self.ensure_loop()
        if self.in_loop_thread():
            return fn(*args, **kwargs)
        return call_in_loop(loop, fn, *args, timeout=60, **kwargs)

    def ensure_server(self):
        if self.server is not None:
            return self.server
        loop = self.ensure_loop()
        server = Server(self.address, **self.server_options)
        if self.mode == "script":
            loop.run_until_complete(server.start())
        elif self.mode == "host":
            _run_sync(server.start())
        else:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        self.server = server
        atexit.register(self.close)
        return server

    def ensure_bridge(self, **options):
        """The browser viewer for this runtime's server (started on first use; options as
        fastfig.bridge.Bridge's). ``.url`` is the page to open. It runs in a thread of its
        own and reaches the server over ZeroMQ, so drawing never stalls the page."""
        if self.bridge is not None:
            return self.bridge
        from ..web.bridge import Bridge
        server = self.ensure_server()
        # In a script the server's loop runs only while the script blocks (plt.show):
        # the bridge serves the page at once and greets the server when it answers.
        self.bridge = Bridge(server, **options).start_thread(wait_for_server=False)
        return self.bridge

    # -- running -----------------------------------------------------------------------------

    def can_block(self):
        return self.mode == "script" and not self.loop.is_running()

    def run(self, timeout=None):
        """Run the loop in this thread (script mode) for timeout seconds, or until
        stop() is called, every served figure is closed (unless keep_serving), Ctrl-C
        (KeyboardInterrupt is raised) or SIGTERM (SystemExit is raised)."""
        loop = self.ensure_loop()
        if not self.can_block():
            if timeout:
                _sleep_elsewhere(timeout)
            return
        self._stop = loop.create_future()
        terminated = []
        if timeout is not None:
            loop.call_later(timeout, self.stop)
        elif not self.keep_serving and not self.canvases:
            return
        installed = False
        if (threading.current_thread() is threading.main_thread() and timeout is None
                and not self.keep_serving):   # `fastfig serve` handles SIGTERM itself
            try:
                loop.add_signal_handler(signal.SIGTERM, lambda: (terminated.append(1),
                                                                 self.stop()))
                installed = True
            except (NotImplementedError, RuntimeError):
                pass
        try:
            loop.run_until_complete(self._stop)
        finally:
            self._stop = None
            if installed:
                loop.remove_signal_handler(signal.SIGTERM)
        if terminated:
            raise SystemExit(0)

    def stop(self):
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def figure_closed(self):
        if not self.canvases and not self.keep_serving:
            self.stop()

    def close(self):
        if self.bridge is not None:
            bridge, self.bridge = self.bridge, None
            try:
                bridge.close()
            except Exception:
                pass
        if self.server is not None:
            server, self.server = self.server, None
            try:
                if self.mode == "thread" and self.loop.is_running():
                    self.call(server.close)
                else:
                    server.close()
            except Exception:
                pass
        if self.mode == "thread" and self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


def _interactive_prompt():
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    try:
        return ipython is not None and ipython.get_ipython() is not None
    except Exception:
        return False


def _run_sync(coro):
    """Run a coroutine that never suspends (Server.start) to completion, here."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("coroutine suspended")


def _sleep_elsewhere(timeout):
    import time
    time.sleep(timeout)


_runtime = None


def get():
    """The process's Runtime."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime
