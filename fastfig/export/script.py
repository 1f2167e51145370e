"""Finding the animation a plain script makes, as ``fastfig serve`` runs it, without
showing anything: the script runs as ``__main__`` under Agg, ``plt.show``/``plt.pause``
return at once, backend switches are ignored, and every Animation created is noted.

A worker process recreates the figure by running the script again (the ``Source``: the
script's text travels with the job, so a worker on another machine needs only the same
Python packages). Which animation: the one handed to the k-th ``fastfig.export`` call
(the script then stops there), or the index-th Animation created.
"""

import os
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Optional

from .errors import ExportError

#: One script at a time per process (a Dask worker may run tasks in several threads).
_lock = threading.RLock()
_collector = None


class _Found(BaseException):
    """Stops the script at the export call that named the animation."""


@dataclass(frozen=True)
class Source:
    path: str                       # the script, absolute
    code: str                       # its text
    argv: tuple = ()                # sys.argv[1:] for it
    cwd: Optional[str] = None
    call: Optional[int] = None      # the animation of the call-th fastfig.export call
    index: Optional[int] = None     # else the index-th Animation created
    sys_path: tuple = field(default=())

    @classmethod
    def from_path(cls, path, argv=(), index=None):
        path = os.path.abspath(os.fspath(path))
        try:
            with open(path, encoding="utf-8") as f:
                code = f.read()
        except OSError as e:
            raise ExportError(f"cannot read the script {path!r}: {e.strerror}") from None
        return cls(path, code, tuple(argv), os.getcwd(), None, index)

    @classmethod
    def from_main(cls, call):
        """The running program's script, if it is one that can be run again (not a
        prompt or a notebook), for its call-th export call; else None."""
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None)
        if (not path or not path.endswith(".py") or not os.path.isfile(path)
                or hasattr(sys, "ps1") or "ipykernel" in sys.modules):
            return None
        src = cls.from_path(path, sys.argv[1:])
        return cls(src.path, src.code, src.argv, src.cwd, call, None)


class Collector:
    def __init__(self, call=None):
        self.call = call
        self.animations = []
        self.export_calls = 0
        self.found = None

    def on_export(self, anim):
        """fastfig.export called by the script being collected."""
        self.export_calls += 1
        if self.call is None or self.export_calls == self.call:
            self.found = anim
            raise _Found()


def collecting():
    """The Collector of the script running in this thread, if any."""
    return _collector


def run(source, own_process=True):
    """Run the script; returns (animation, collector). Raises ExportError when it makes
    no animation, or several and the source does not say which. own_process: this
    process is ours (a worker, the command line): pyplot is switched to Agg first, which
    closes its figures; else the script runs under pyplot's backend, showing nothing."""
    global _collector
    import matplotlib
    import matplotlib.animation as manim
    import matplotlib.pyplot as plt

    with _lock:
        collector = Collector(source.call)
        init = manim.Animation.__init__

        def noting_init(self, *args, **kwargs):
            init(self, *args, **kwargs)
            collector.animations.append(self)

        saved = (sys.argv, list(sys.path), os.getcwd(), sys.modules.get("__main__"),
                 plt.show, plt.pause, matplotlib.use, plt.switch_backend)
        main = types.ModuleType("__main__")
        main.__file__ = source.path
        main.__builtins__ = __builtins__
        try:
            if own_process:
                plt.switch_backend("agg")
            else:
                # Resolved now, as pyplot resolves it at its first figure: switching is
                # ignored below, and that first resolution goes through switch_backend
                # (after matplotlib.use("agg") before pyplot was imported, say).
                plt._get_backend_mod()
            manim.Animation.__init__ = noting_init
            plt.show = lambda *a, **k: None
            plt.pause = lambda *a, **k: None
            matplotlib.use = lambda *a, **k: None
            plt.switch_backend = lambda *a, **k: None
            sys.argv = [source.path, *source.argv]
            sys.path.insert(0, os.path.dirname(source.path))
            if source.cwd and os.path.isdir(source.cwd):
                os.chdir(source.cwd)
            sys.modules["__main__"] = main
            _collector = collector
            code = compile(source.code, source.path, "exec")
            try:
                exec(code, main.__dict__)
            except _Found:
                pass
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise ExportError(f"{source.path} exited with status {e.code}") from None
        finally:
            _collector = None
            manim.Animation.__init__ = init
            (sys.argv, sys.path[:], cwd, main_before, plt.show, plt.pause, matplotlib.use,
             plt.switch_backend) = saved
            os.chdir(cwd)
            if main_before is not None:
                sys.modules["__main__"] = main_before
        return _choose(source, collector), collector


def _choose(source, collector):
    if collector.found is not None:
        return collector.found
    if source.call is not None:
        raise ExportError(f"{source.path} did not reach its fastfig.export call number "
                          f"{source.call} when run again (it must make the same "
                          f"animation each time it runs)")
    anims = collector.animations
    if not anims:
        raise ExportError(f"{source.path} creates no matplotlib animation "
                          f"(FuncAnimation) to export")
    if source.index is not None:
        if not -len(anims) <= source.index < len(anims):
            raise ExportError(f"{source.path} creates {len(anims)} animation(s); there "
                              f"is no number {source.index}")
        return anims[source.index]
    if len(anims) > 1:
        raise ExportError(f"{source.path} creates {len(anims)} animations: say which "
                          f"to export (--animation N, counted from 0)")
    return anims[0]
