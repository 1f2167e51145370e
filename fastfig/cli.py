"""The ``fastfig`` command line: serve a script's figures, relay a server, make CURVE keys."""

import argparse
import os
import sys

from .transport import security

KEYS_HELP = """\
CURVE keys encrypt and authenticate fastfig across machines.

  fastfig keys DIR                  writes DIR/server.key (public) and DIR/server.key_secret
  fastfig keys DIR --name alice     a client's pair: DIR/alice.key, DIR/alice.key_secret

Give the server its secret file (fastfig serve --curve-secret DIR/server.key_secret) and
optionally a directory of allowed clients' public .key files (--curve-clients CLIENTS/;
without it any client that knows the server's public key may connect). Give clients the
server's public file: Client(addr, curve=CurveClient.load("DIR/server.key")).
Secret files are written mode 0600 in a 0700 directory: never share them.
"""


def _curve_server(args):
    if not getattr(args, "curve_secret", None):
        return None
    return security.CurveServer.load(args.curve_secret, getattr(args, "curve_clients", None))


def cmd_keys(args):
    public, secret = security.make_keys(args.dir, args.name)
    print(f"public key: {public}\nsecret key: {secret}")
    return 0


def cmd_relay(args):
    from .transport.relay import Relay
    _check_address(args, "--bind")
    upstream = None
    if args.upstream_server_key:
        upstream = security.CurveClient.load(args.upstream_server_key,
                                             args.upstream_client_secret)
    relay = Relay(args.connect, args.bind, curve=_curve_server(args),
                  upstream_curve=upstream, allow_remote=args.allow_remote,
                  timeout=args.timeout)
    print(f"fastfig relay: {args.connect} -> {relay.address}", flush=True)
    try:
        relay.wait()
    except KeyboardInterrupt:
        pass
    finally:
        relay.close()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class UsageError(Exception):
    """A command line mistake found after parsing (a busy port, an address in use):
    reported in one line naming the flag, with status 2, as argparse reports its own."""


def cmd_serve(args):
    """Run the script under the fastfig backend: its figures are served as it shows them
    (a blocking plt.show() serves until its figures are closed, plt.pause() and
    animations run live), and whatever figures are open when it ends are served until
    they are closed, Ctrl-C or SIGTERM."""
    import signal

    from . import userscript
    userscript.check(args.script)
    _check_address(args, "--address")
    _check_port_free(args.port)

    import matplotlib
    matplotlib.use("fastfig")
    import matplotlib.pyplot as plt

    from .mpl import runtime

    name = os.path.basename(args.script)
    viewer = []

    def announce(count, address):
        # When the loop first runs with figures: they are served from now on.
        print(f"fastfig: serving {count} figure{'s' if count != 1 else ''} of {name} on "
              f"{address} (Ctrl-C to stop)", flush=True)
        if viewer:
            print("fastfig: open the viewer at this URL:", flush=True)
            print(viewer[0].url, flush=True)

    rt = runtime.get()
    rt.configure(address=args.address, fps=args.fps, announce=announce,
                 server_options={"curve": _curve_server(args),
                                 "allow_remote": args.allow_remote})
    rt.ensure_loop(mode="script")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _start_serving(rt, args, viewer)
        status = userscript.run(args.script, args.args)
        if status == 0:
            plt.show(block=False)      # figures made but never shown are served too
            rt.run(until_closed=True)
        return status
    except KeyboardInterrupt:
        return 0
    finally:
        # A second SIGTERM while closing ends the process at once, without a traceback.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        rt.close()


def _start_serving(rt, args, viewer):
    import zmq
    try:
        rt.ensure_server()
    except zmq.ZMQError as e:
        if e.errno == zmq.EADDRINUSE:
            raise UsageError(f"argument --address: {args.address} is in use") from None
        raise UsageError(f"argument --address: cannot bind {args.address}: {e}") from None
    if args.viewer:
        try:
            viewer.append(rt.ensure_bridge(port=args.port or 0))
        except OSError as e:
            raise UsageError(f"argument --port: cannot serve the viewer on port "
                             f"{args.port}: {e.strerror or e}") from None


def _check_address(args, flag):
    """The address forms the command line takes, and none that would expose an
    unencrypted server to the network, in the command line's own words."""
    address = getattr(args, flag.lstrip("-").replace("-", "_"))
    if address is None or address in ("tcp", "ipc"):
        return
    if address.startswith("ipc://"):
        if len(address) == len("ipc://"):
            raise UsageError(f"argument {flag}: {address!r} names no socket path")
        return
    host = security.tcp_host(address)
    if host is None:
        raise UsageError(f"argument {flag}: {address!r} is not an address: give tcp, ipc, "
                         "tcp://HOST:PORT or ipc:///PATH")
    port = address.rsplit(":", 1)[1]
    if port != "*" and not 0 <= int(port) <= 65535:
        raise UsageError(f"argument {flag}: port {port} is outside 0-65535")
    if not (security.is_loopback(address) or getattr(args, "curve_secret", None)
            or getattr(args, "allow_remote", False)):
        raise UsageError(f"argument {flag}: {address} is reachable from other machines: "
                         "bind 127.0.0.1 or ipc, encrypt with --curve-secret FILE, or add "
                         "--allow-remote on a trusted network")


def _check_port_free(port):
    """A busy viewer port found before the script runs, not after."""
    if not port:
        return
    import socket
    with socket.socket() as s:
        # As the viewer's server binds: a port in TIME_WAIT is free for it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(f"argument --port: port {port} is in use") from None


def cmd_demo(args):
    from . import demo
    _check_port_free(args.port)
    return demo.main(args)


def _port(text):
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1-65535")
    return port


def _positive(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 800x480, not {text!r}") from None
    if not (50 <= w <= 8192 and 50 <= h <= 8192):
        raise argparse.ArgumentTypeError("width and height must be 50..8192 pixels")
    return w, h


def build_parser():
    from . import __version__
    p = argparse.ArgumentParser(prog="fastfig", description="Stream live matplotlib "
                                "figures to any frontend over ZeroMQ.")
    p.add_argument("--version", action="version", version=f"fastfig {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a Python script under the fastfig backend and "
                       "serve its figures", description="Run SCRIPT under the fastfig "
                       "matplotlib backend and serve its pyplot figures (figure numbers are "
                       "the ids) until Ctrl-C or SIGTERM. plt.show() serves and blocks, "
                       "plt.pause() and animations run live, blitting included.")
    s.add_argument("script")
    s.add_argument("args", nargs="*", default=[], help="arguments for the script (after '--' when "
                   "they start with a dash)")
    s.add_argument("--address", default=None, help="control endpoint: tcp://127.0.0.1:PORT, "
                   "'ipc' (a private directory) or ipc:///PATH (default: 127.0.0.1, a free "
                   "port)")
    s.add_argument("--fps", type=_positive, default=None, help="target frame rate of every "
                   "figure (default: as fast as frontends take frames)")
    s.add_argument("--port", type=_port, default=None, help="port of the browser viewer on "
                   "127.0.0.1 (default: a free one)")
    s.add_argument("--no-viewer", dest="viewer", action="store_false", help="do not serve "
                   "the browser viewer (ZeroMQ clients only)")
    _add_curve_server(s)
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="serve live demo figures to the browser",
                       description="Serve three live matplotlib figures (a line animation "
                       "with blitting, an image and scatter animation, an interactive "
                       "figure with a slider and picking) and print the URL of the browser "
                       "viewer, token included. Runs until Ctrl-C or SIGTERM.")
    d.add_argument("--port", type=_port, default=None, help="port on 127.0.0.1 (default: a "
                   "free one)")
    d.add_argument("--size", type=_size, default=(800, 480), metavar="WxH",
                   help="size of each figure in pixels (default: 800x480)")
    d.add_argument("--open", action="store_true", help="open the URL in a web browser")
    d.add_argument("--token", default=None, help="the token the URL carries (default: a "
                   "fresh random one; fix it to keep open pages working across restarts)")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("relay", help="fan a server out to more subscribers or machines",
                       description="Relay a fastfig server: one client of the server per "
                       "figure watched, a server to its own clients; credit flows end to end, "
                       "input events and downloads go through to the figure's owner.")
    r.add_argument("--connect", required=True, help="the server's control endpoint")
    r.add_argument("--bind", default=None, help="the relay's control endpoint (default: "
                   "127.0.0.1, a free port)")
    r.add_argument("--timeout", type=_positive, default=10.0, help="seconds to wait for the "
                   "server")
    r.add_argument("--upstream-server-key", help="the server's public .key file, if it uses "
                   "CURVE")
    r.add_argument("--upstream-client-secret", help="the relay's own .key_secret for the server")
    _add_curve_server(r)
    r.set_defaults(func=cmd_relay)

    k = sub.add_parser("keys", help="make a CURVE key pair", description=KEYS_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    k.add_argument("dir")
    k.add_argument("--name", default="server")
    k.set_defaults(func=cmd_keys)

    from .export.cli import register as register_export    # fastfig export SCRIPT OUT
    register_export(sub)
    from .recording.cli import register as register_recording   # record, replay
    register_recording(sub)
    return p


def _add_curve_server(p):
    p.add_argument("--curve-secret", help="encrypt with CURVE: this side's .key_secret "
                   "file (see `fastfig keys --help`)")
    p.add_argument("--curve-clients", help="directory of allowed clients' public .key "
                   "files (default with --curve-secret: any client knowing the public key)")
    p.add_argument("--allow-remote", action="store_true", help="allow binding a "
                   "non-loopback address without CURVE (trusted networks only)")


def main(argv=None):
    from .userscript import ScriptNotFound
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"fastfig {args.command}"
    try:
        return args.func(args)
    except (UsageError, ScriptNotFound) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TimeoutError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
