"""The ``fastfig`` command line: serve a script's figures, relay a server, make CURVE keys."""

import argparse
import os
import runpy
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


def cmd_serve(args):
    """Run the script under the fastfig backend: its figures are served as it shows them
    (plt.show() blocks and serves; plt.pause() and animations run on fastfig's loop),
    and whatever figures are open when it ends are served until Ctrl-C or SIGTERM."""
    import signal

    import matplotlib
    matplotlib.use("fastfig")
    import matplotlib.pyplot as plt

    from .mpl import runtime
    from .mpl.backend import FigureCanvasFastfig

    rt = runtime.get()
    rt.address = args.address
    rt.server_options = {"curve": _curve_server(args), "allow_remote": args.allow_remote}
    rt.keep_serving = True
    announced = []

    def announce(count, address):
        if not announced:
            announced.append(True)
            print(f"fastfig: {count} figure(s) on {address} (Ctrl-C to stop)", flush=True)
    rt.announce = announce
    if args.fps:
        FigureCanvasFastfig.fps = args.fps
    rt.ensure_loop(mode="script")
    server = rt.ensure_server()
    signal.signal(signal.SIGTERM, _interrupt)
    sys.argv = [args.script, *args.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    print(f"fastfig: serving {args.script} on {server.address}", flush=True)
    if args.viewer:
        bridge = rt.ensure_bridge(port=args.port)
        print("fastfig: open the viewer at this URL:", flush=True)
        print(bridge.url, flush=True)
    try:
        runpy.run_path(args.script, run_name="__main__")
        plt.show(block=False)
        announce(len(rt.canvases), server.address)
        rt.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        rt.close()
    return 0


def cmd_demo(args):
    from . import demo
    return demo.main(args)


def _size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 800x480, not {text!r}") from None
    if not (50 <= w <= 8192 and 50 <= h <= 8192):
        raise argparse.ArgumentTypeError("width and height must be 50..8192 pixels")
    return w, h


def build_parser():
    p = argparse.ArgumentParser(prog="fastfig", description="Stream live matplotlib "
                                "figures to any frontend over ZeroMQ.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a Python script under the fastfig backend and "
                       "serve its figures", description="Run SCRIPT under the fastfig "
                       "matplotlib backend and serve its pyplot figures (figure numbers are "
                       "the ids) until Ctrl-C or SIGTERM. plt.show() serves and blocks, "
                       "plt.pause() and animations run live, blitting included.")
    s.add_argument("script")
    s.add_argument("args", nargs="*", help="arguments for the script (after '--' when "
                   "they start with a dash)")
    s.add_argument("--address", default=None, help="control endpoint: tcp://127.0.0.1:PORT, "
                   "'ipc' (a private directory) or ipc:///PATH (default: 127.0.0.1, a free "
                   "port)")
    s.add_argument("--fps", type=float, default=None, help="target frame rate of every "
                   "figure (default: as fast as frontends take frames)")
    s.add_argument("--port", type=int, default=0, help="port of the browser viewer on "
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
    d.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free "
                   "one)")
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
    r.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
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
    return p


def _add_curve_server(p):
    p.add_argument("--curve-secret", help="encrypt with CURVE: this side's .key_secret "
                   "file (see `fastfig keys --help`)")
    p.add_argument("--curve-clients", help="directory of allowed clients' public .key "
                   "files (default with --curve-secret: any client knowing the public key)")
    p.add_argument("--allow-remote", action="store_true", help="allow binding a "
                   "non-loopback address without CURVE (trusted networks only)")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TimeoutError, OSError) as e:
        print(f"fastfig: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
