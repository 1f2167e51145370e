"""Running a user's script as ``python SCRIPT ARGS`` would: ``__main__``, sys.argv and
sys.path[0] set for it, and when it fails, its own traceback (from its first frame, not
ours) and a non-zero status; ``sys.exit(n)`` in it gives status n."""

import os
import runpy
import sys
import traceback


class ScriptNotFound(Exception):
    """The script named on the command line is not a readable file."""


def check(path):
    """Raise ScriptNotFound, with the message to print, unless path is a readable file."""
    if not os.path.exists(path):
        raise ScriptNotFound(f"can't open file {path!r}: no such file")
    if not os.path.isfile(path):
        raise ScriptNotFound(f"can't run {path!r}: not a file")
    if not os.access(path, os.R_OK):
        raise ScriptNotFound(f"can't open file {path!r}: permission denied")


def run(path, args=()):
    """Run the script at path with args; return the exit status python would give it
    (after printing its traceback when it raised). KeyboardInterrupt propagates: the
    caller decides what Ctrl-C means."""
    check(path)
    sys.argv = [path, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        return exit_status(e)
    except KeyboardInterrupt:
        raise
    except BaseException as e:   # noqa: B036 - reported as python reports it
        print_user_traceback(e, path)
        return 1
    return 0


def exit_status(e):
    """The status python exits with for SystemExit e (a message is printed, as python does)."""
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def print_user_traceback(e, path):
    """Print e's traceback from the script's first frame on, as python would have
    printed it (runpy's and fastfig's own frames before it are left out). A SyntaxError
    has no frame of the script: its message says the file and line."""
    script = os.path.abspath(path)
    tb = e.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != script:
        tb = tb.tb_next
    traceback.print_exception(type(e), e, tb, file=sys.stderr)
    sys.stderr.flush()
