"""What export raises."""

from ..errors import FastfigError

INSTALL_HINT = 'pip install "fastfig[export]"'


class ExportError(FastfigError, ValueError):
    """The export cannot be done as asked: no animation in the script, an output suffix
    that names no known format, PyAV missing, an animation of unknown length..."""


def require_av():
    """Import PyAV, or say how to get it."""
    try:
        import av
    except ImportError as e:
        raise ExportError(f"exporting video needs PyAV (FFmpeg's libraries in a wheel, no "
                          f"ffmpeg binary): {INSTALL_HINT}") from e
    return av
