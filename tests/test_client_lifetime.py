"""A Client dropped without close() releases its sockets: nothing hangs later.

The gallery sweep hung for 14 minutes inside a garbage collection: a Client left
unclosed by an exception was collected as a reference cycle (its Inbox called back
through a bound method), the collector finalized the zmq context before its socket,
and the context's term() waited for that socket for ever. Run in a child process, so a
regression fails on its timeout instead of hanging the suite."""

import subprocess
import sys
import textwrap
import time

import numpy as np

from fastfig import Client, Server

DROP_THEN_COLLECT = textwrap.dedent("""
    import gc, warnings
    warnings.simplefilter("always", ResourceWarning)
    import numpy as np
    from fastfig import Client, Server
    server = Server.run_in_thread("tcp")
    stream = server.add_figure("1", 64, 48)
    stream.publish(np.full((48, 64, 4), 200, np.uint8))
    for _ in range(3):
        c = Client(server.address, "1", timeout=10)
        assert c.next_frame(timeout=10) is not None
        del c                      # never closed
        gc.collect()
    # Also when the client is only collected by the garbage collector.
    c = Client(server.address, "1", timeout=10)
    c.next_frame(timeout=10)
    holder = [c]
    holder.append(holder)          # a cycle of the user's own
    del c, holder
    gc.collect()
    server.close()
    print("collected", flush=True)
""")


def test_a_client_dropped_without_close_is_freed_with_its_sockets():
    proc = subprocess.run([sys.executable, "-c", DROP_THEN_COLLECT], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "collected"
    assert "ResourceWarning" not in proc.stderr, proc.stderr


def test_the_last_words_of_a_server_that_exits_reach_the_client():
    """A script that ends right after its last figure closed: the server sends the
    figure's close and the figure list, then its process goes and the connection with
    it, before the client reads them. They must still be read (a client waiting for
    ``closed`` otherwise waits for ever; the gallery harness lost 1 in 10)."""
    server = Server.run_in_thread("tcp")
    stream = server.add_figure("1", 64, 48)
    stream.publish(np.full((48, 64, 4), 200, np.uint8))
    with Client(server.address, "1", timeout=10) as c:
        assert c.next_frame(timeout=10) is not None
        server.call(stream.close)   # close and the new figure list go out...
        server.close()              # ...and the connection goes right after
        time.sleep(0.5)             # the client reads nothing meanwhile
        deadline = time.monotonic() + 5
        while not c.closed and time.monotonic() < deadline:
            c.next_frame(timeout=0.1)
        assert c.closed
