"""An asyncio loop of its own in a daemon thread, for the objects that serve from one
(ServerThread, the websocket bridge) while the caller's thread stays synchronous."""

import asyncio
import concurrent.futures
import threading


def start_loop_thread(name, start, stop, timeout=30):
    """Run a new event loop in a daemon thread named name: first ``await start()``, then
    the loop until ``loop.stop()``; then stop() is called on the loop's thread and the
    tasks left are cancelled. Returns (thread, loop) once start() is done, or raises what
    it raised."""
    ready = concurrent.futures.Future()

    def main():
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


def call_in_loop(loop, fn, *args, timeout=30, **kwargs):
    """Run fn(*args, **kwargs) on loop, which runs in another thread, and return its
    result (or raise its exception) here."""
    done = concurrent.futures.Future()

    def run():
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as e:
            done.set_exception(e)

    loop.call_soon_threadsafe(run)
    return done.result(timeout=timeout)
