"""The video formats ``fastfig export`` writes, chosen by the output file's suffix."""

import os
from dataclasses import dataclass, field

from .errors import ExportError


@dataclass(frozen=True)
class Format:
    suffix: str
    container: str           # FFmpeg muxer
    codec: str               # FFmpeg encoder
    pix_fmt: str             # what the encoder is fed
    #: Encoder options. x264's are its defaults (preset medium, crf 23), the same that
    #: `ffmpeg -c:v libx264` and matplotlib's FFMpegWriter use.
    options: dict = field(default_factory=dict)
    #: Muxer options of the final file (not of the segments joined into it).
    final_options: dict = field(default_factory=dict)
    #: Tag the stream as BT.709, limited range (YUV formats).
    bt709: bool = True


FORMATS = {
    ".mp4": Format(".mp4", "mp4", "libx264", "yuv420p",
                   # moov first: browsers start playing before the whole file arrived.
                   final_options={"movflags": "+faststart"}),
    ".webm": Format(".webm", "webm", "libvpx-vp9", "yuv420p",
                    # libvpx's defaults (cpu-used 1, no row threads) take seconds per
                    # 1080p frame; these keep constant quality at a usable speed.
                    options={"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4",
                             "row-mt": "1"}),
    # GIF: a fixed 256-colour palette (RGB 3-3-2, ordered dither), the same in every
    # segment, so segments join as they are; mp4 or webm for fidelity.
    ".gif": Format(".gif", "gif", "gif", "rgb8", bt709=False),
}


def for_path(path):
    """The Format for an output path, by its suffix (case-insensitive)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        known = ", ".join(FORMATS)
        raise ExportError(f"cannot tell the video format of {os.fspath(path)!r}: its suffix "
                          f"must be one of {known}") from None
