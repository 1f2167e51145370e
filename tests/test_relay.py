"""The relay (fastfig/transport/relay.py): frames, late joiners, events and topics through it."""

import threading
import time

import numpy as np
import pytest

from fastfig import Client, Relay, Server
from transport_helpers import frame_index, make_frame


@pytest.fixture(params=["tcp", "ipc"])
def setup(request):
    srv = Server.run_in_thread(request.param)
    relay = Relay(srv.address, request.param)
    yield srv, relay
    relay.close()
    srv.close()


def test_frames_through_the_relay(setup):
    srv, relay = setup
    stream = srv.add_figure("1", 160, 120)
    other = srv.add_figure("10", 160, 120)
    stream.publish(make_frame(0))
    other.publish(make_frame(0, figure=10))
    with Client(relay.address, figure="1", timeout=5) as c:
        assert c.pub_address == relay.pub_address
        assert np.array_equal(c.next_frame(5).image, make_frame(0))

        def run():
            time.sleep(0.3)
            for i in range(1, 100):
                other.publish(make_frame(i, figure=10))
                stream.publish(make_frame(i))
                time.sleep(0.002)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        for f in c.frames(timeout=3):
            assert np.array_equal(f.image, make_frame(frame_index(f.image)))
            if frame_index(f.image) == 99:
                break
        assert frame_index(c.image) == 99
        t.join(10)
        # A late joiner behind the relay starts from a snapshot by the server.
        with Client(relay.address, figure="1", timeout=5) as late:
            f = late.next_frame(5)
            assert f.keyframe and np.array_equal(f.image, make_frame(99))
        # Input events go through to the server.
        c.send_event("key_press", key="ctrl+z")
        event = stream.get_event(timeout=5)
        assert event["key"] == "ctrl+z" and event["figure"] == "1"


def test_relay_needs_a_server():
    with pytest.raises(TimeoutError):
        Relay("tcp://127.0.0.1:9", timeout=0.5)
