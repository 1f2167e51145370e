"""``fastfig export SCRIPT OUT``: the command line of fastfig.export (registered by
fastfig/cli.py)."""

import sys

DESCRIPTION = """\
Run SCRIPT as `fastfig serve` would, without showing anything, and write the matplotlib
animation it makes (FuncAnimation) to OUT. OUT's suffix picks the format: .mp4 (H.264,
yuv420p, BT.709), .webm (VP9), .gif. Frames are drawn as Animation.save draws them
(blitting where it gives the same pixels) and encoded in-process with PyAV: no ffmpeg
binary. With --workers N, N processes each run SCRIPT again and render a range of frames;
the pieces are joined without re-encoding, so SCRIPT must make the same figure every run.
"""


def register(subparsers):
    """Add the ``export`` subcommand to fastfig's argparse subparsers."""
    e = subparsers.add_parser("export", help="write a script's matplotlib animation to "
                              "a video file (.mp4, .webm, .gif)", description=DESCRIPTION)
    e.add_argument("script", help="a Python script that makes a FuncAnimation, or a "
                   ".ffrec recording (fastfig record) to make a video of")
    e.add_argument("out", help="the file to write: .mp4, .webm, .gif, or .ffrec (a "
                   "recording of the script's animation)")
    e.add_argument("--fps", type=_positive(float), default=None, help="frames per second "
                   "of the video (default: one frame per the animation's interval)")
    e.add_argument("--frames", type=_positive(int), default=None, help="export the first "
                   "N frames (default: all of the animation's frames)")
    e.add_argument("--workers", type=_positive(int), default=None, help="processes "
                   "rendering in parallel (default: one per 4 CPUs, at least 1, at most 4)")
    e.add_argument("--animation", type=int, default=None, metavar="N", help="which "
                   "animation, counted from 0, when the script makes several")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("args", nargs="*", help="arguments for the script (after '--')")
    e.set_defaults(func=run)
    return e


def _positive(kind):
    def parse(text):
        import argparse
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value
    return parse


def run(args):
    from .errors import ExportError
    from .run import export
    try:
        result = export(args.script, args.out, fps=args.fps, frames=args.frames,
                        workers=args.workers, quiet=args.quiet, animation=args.animation,
                        argv=args.args, _own_process=True)
    except ExportError as e:
        print(f"fastfig export: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"fastfig export: {result.frames} frames at {result.fps:g} fps to "
              f"{result.path} in {result.seconds:.1f} s "
              f"({result.frames_per_second:.1f} frames/s)", file=sys.stderr)
    return 0
