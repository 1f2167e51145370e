"""Animations to video files: ``fastfig.export(anim, "out.mp4")`` and
``fastfig export SCRIPT OUT``. Frames are drawn as ``Animation.save`` draws them, blitting
where that gives the same pixels, encoded in-process with PyAV (H.264 .mp4, VP9 .webm,
.gif), frame ranges rendered in parallel processes or on a Dask cluster and joined
without re-encoding. Needs the ``export`` extra: ``pip install "fastfig[export]"``.

This package is itself callable: ``fastfig.export(...)`` is ``fastfig.export.export(...)``
(see its docstring for the arguments).
"""

import sys
import types

from .errors import ExportError
from .run import Result, export

__all__ = ["ExportError", "Result", "export"]


class _CallableModule(types.ModuleType):
    # `fastfig.export` names both this package and the function once the package is
    # imported; calling the package calls the function, so both spellings work.
    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
