"""``fastfig record`` and ``fastfig replay`` (registered by fastfig/cli.py)."""

import os
import signal
import sys
import threading
import time

RECORD_HELP = """\
Record one figure of the fastfig server at ADDRESS (its control endpoint, as `fastfig
serve` prints it) to OUT.ffrec: every frame as this client receives it, with times, an
index and checkpoints for seeking (RECORDING.md). Records until --duration seconds pass,
the figure closes, or Ctrl-C; the file is complete (index written) in every case.
"""

REPLAY_HELP = """\
Serve a recording as a live figure: any frontend (the browser viewer, whose URL is
printed, a notebook, fastfig.Client) receives it as if live, paced by the recorded times
times --speed, with the timeline controls (play, pause, step, seek, reverse, speed).
Runs until Ctrl-C or SIGTERM.
"""


def register(subparsers):
    from ..cli import _port, _positive
    r = subparsers.add_parser("record", help="record a served figure to a .ffrec file",
                              description=RECORD_HELP)
    r.add_argument("address", help="the server's control endpoint: tcp://HOST:PORT or "
                   "ipc:///PATH")
    r.add_argument("out", help="the recording to write (.ffrec)")
    r.add_argument("--figure", default=None, help="the figure id (default: the server's "
                   "first figure)")
    r.add_argument("--duration", type=_positive, default=None, metavar="S",
                   help="stop after S seconds (default: until the figure closes or Ctrl-C)")
    r.add_argument("--timeout", type=_positive, default=10.0, metavar="S",
                   help="seconds to wait for the server and the figure")
    r.set_defaults(func=cmd_record)

    p = subparsers.add_parser("replay", help="serve a .ffrec recording as a live figure",
                              description=REPLAY_HELP)
    p.add_argument("recording", help="the .ffrec file")
    p.add_argument("--port", type=_port, default=None, help="port of the browser viewer "
                   "on 127.0.0.1 (default: a free one)")
    p.add_argument("--speed", type=_speed, default=1.0, metavar="X", help="playback speed "
                   "factor, 0.05-20 (default: 1, as recorded)")
    p.add_argument("--loop", action="store_true", help="start over at the end")
    p.add_argument("--paused", action="store_true", help="start paused on the first frame")
    p.add_argument("--address", default=None, help="control endpoint of the replay's "
                   "server (default: 127.0.0.1, a free port)")
    p.add_argument("--no-viewer", dest="viewer", action="store_false",
                   help="do not serve the browser viewer (ZeroMQ clients only)")
    p.set_defaults(func=cmd_replay)


def _speed(text):
    import argparse

    from ..transport.protocol import MAX_SPEED, MIN_SPEED
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"must be {MIN_SPEED}..{MAX_SPEED:g}, not {text}")
    return value


def _check_connect_address(address):
    from ..cli import UsageError
    from ..transport import security
    if address.startswith("ipc://") and len(address) > len("ipc://"):
        return
    if security.tcp_host(address) is None:
        raise UsageError(f"argument address: {address!r} is not an address: give "
                         "tcp://HOST:PORT or ipc:///PATH")
    port = address.rsplit(":", 1)[1]
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"argument address: port {port} is outside 1-65535")


def _check_out(path):
    from ..cli import UsageError
    if not path.lower().endswith(".ffrec"):
        raise UsageError(f"argument out: {path!r} must end in .ffrec")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"argument out: the directory {parent!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"argument out: {path!r} is a directory")


def cmd_record(args):
    from ..cli import UsageError
    from ..errors import ProtocolError, ServerError
    from ..transport import protocol as P
    from ..transport.client import Client
    _check_connect_address(args.address)
    _check_out(args.out)
    if args.figure is not None:
        try:
            P.check_figure_id(args.figure)
        except ProtocolError as e:
            raise UsageError(f"argument --figure: {e}") from None
    try:
        client = Client(args.address, args.figure, timeout=args.timeout)
    except ServerError as e:
        raise UsageError(f"argument --figure: {e}") from None
    except KeyboardInterrupt:
        print("fastfig record: interrupted before the server answered; nothing recorded",
              file=sys.stderr)
        return 130
    stop = threading.Event()
    # Ctrl-C and SIGTERM end the loop between frames: the last record is whole and the
    # index is written (a KeyboardInterrupt inside a write could cut a record).
    previous = {s: signal.signal(s, lambda *_: stop.set())
                for s in (signal.SIGINT, signal.SIGTERM)}
    start = time.monotonic()
    try:
        recorder = client.record(args.out)
        print(f"fastfig record: recording figure {client.figure} of {args.address} to "
              f"{args.out} (Ctrl-C to stop)", flush=True)
        while not stop.is_set() and not client.closed:
            left = None if args.duration is None else start + args.duration - time.monotonic()
            if left is not None and left <= 0:
                break
            client.next_frame(timeout=min(0.2, left) if left is not None else 0.2)
        recorder.close()
    finally:
        client.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    why = "the figure closed" if client.closed else "stopped"
    print(f"fastfig record: {recorder.frames} frames, {recorder.nbytes / 1e6:.1f} MB in "
          f"{time.monotonic() - start:.1f} s to {args.out} ({why})", flush=True)
    return 0


def cmd_replay(args):
    from ..cli import UsageError, _check_address, _check_port_free
    from .format import RecordingError
    from .replay import Replay
    if not os.path.isfile(args.recording):
        raise UsageError(f"argument recording: no such file: {args.recording!r}")
    _check_address(args, "--address")
    _check_port_free(args.port)
    try:
        replay = Replay(args.recording, speed=args.speed, loop=args.loop,
                        play=not args.paused, address=args.address, port=args.port,
                        viewer=args.viewer, verify=True)
    except RecordingError as e:
        raise UsageError(f"argument recording: {e}") from None
    rec = replay.recording
    try:
        if rec.damage is not None:
            print(f"fastfig replay: warning: {rec.damage}", flush=True)
        print(f"fastfig replay: {os.path.basename(rec.path)}, {len(rec)} frames over "
              f"{rec.duration:.1f} s, served on {replay.address} (Ctrl-C to stop)",
              flush=True)
        if replay.url:
            print("fastfig replay: open the viewer at this URL:", flush=True)
            print(replay.url, flush=True)
        done = threading.Event()
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, lambda *_: done.set())
        while not done.wait(0.5):
            pass
    finally:
        replay.close()
    return 0
