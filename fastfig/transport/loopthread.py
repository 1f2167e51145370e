"""An asyncio loop of its own in a daemon thread, for the objects that serve from one
(ServerThread, the websocket bridge) while the caller's thread stays synchronous."""

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable

from ..errors import CloseError


def start_loop_thread(name: str, start: Callable[[], Awaitable[Any]],
                      stop: Callable[[], None], timeout: float = 30
                      ) -> tuple[threading.Thread, asyncio.AbstractEventLoop]:
    """Run a new event loop in a daemon thread named name: first ``await start()``, then
    the loop until ``loop.stop()``; then stop() is called on the loop's thread and the
    tasks left are cancelled. Returns (thread, loop) once start() is done, or raises what
    it raised."""
    ready: concurrent.futures.Future[asyncio.AbstractEventLoop] = concurrent.futures.Future()

    def main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as e:
            ready.set_exception(e)
            loop.close()
            return
        ready.set_result(loop)
        try:
            loop.run_forever()
        finally:
            stop()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=main, name=name, daemon=True)
    thread.start()
    return thread, ready.result(timeout=timeout)


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any,
                 timeout: float = 30, **kwargs: Any) -> Any:
    """Run fn(*args, **kwargs) on loop, which runs in another thread, and return its
    result (or raise its exception) here."""
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as e:
            done.set_exception(e)

    loop.call_soon_threadsafe(run)
    return done.result(timeout=timeout)


class ServerThread:
    """A Server on an event loop of its own in a daemon thread, for synchronous code
    (``Server.run_in_thread()``). Attributes of the Server are reachable through it;
    add_figure and add_source run on the loop; FigureStream methods are thread-safe."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self._errors: list[BaseException] = []
        self._thread, self.loop = start_loop_thread("fastfig-server", server.start,
                                                    self._stop)

    def _stop(self) -> None:
        try:
            self.server.close()
        except CloseError as e:
            self._errors.extend(e.errors)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    def add_figure(self, *args: Any, **kwargs: Any) -> Any:
        return self.server.call(self.server.add_figure, *args, **kwargs)

    def add_source(self, *args: Any, **kwargs: Any) -> Any:
        return self.server.call(self.server.add_source, *args, **kwargs)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run fn(*args, **kwargs) on the server's loop and return its result."""
        return self.server.call(fn, *args, **kwargs)

    def close(self) -> None:
        """Stop the loop and the server; raises CloseError if something failed."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                self._errors.append(TimeoutError("the server's thread did not stop"))
        errors, self._errors = self._errors, []
        if errors:
            raise CloseError("the server", errors)

    def __enter__(self) -> "ServerThread":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
