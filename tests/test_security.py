"""Address helpers of fastfig/transport/security.py."""

from fastfig.transport import security


def test_wildcard_frame_endpoint_is_reached_through_the_control_host():
    assert (security.reachable_endpoint("tcp://0.0.0.0:6001", "tcp://10.1.2.3:6000")
            == "tcp://10.1.2.3:6001")
    assert (security.reachable_endpoint("tcp://*:6001", "tcp://[::1]:6000")
            == "tcp://[::1]:6001")


def test_specific_frame_endpoints_are_kept():
    assert (security.reachable_endpoint("tcp://127.0.0.1:6001", "tcp://localhost:6000")
            == "tcp://127.0.0.1:6001")
    assert security.reachable_endpoint("ipc:///run/x/ctl-pub", "ipc:///run/x/ctl") == "ipc:///run/x/ctl-pub"


def test_loopback_addresses():
    assert security.is_loopback("tcp://127.0.0.1:5")
    assert security.is_loopback("ipc:///tmp/x")
    assert not security.is_loopback("tcp://192.0.2.1:5")
