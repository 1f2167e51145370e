"""Export to and from recordings (RECORDING.md): ``fastfig export REC.ffrec OUT.mp4``
(every recorded frame, one video frame each) and ``fastfig export SCRIPT OUT.ffrec`` (the
animation's frames as a recording: packets of a FrameEncoder, timed at the fps).
``fastfig.export`` hands these here (run.py) when either path is a .ffrec."""

import os
import time
import warnings

import numpy as np

from . import formats, script
from .errors import ExportError, require_av
from .run import Result, _progress, _render_stats

SUFFIX = ".ffrec"
#: The fps of a video made of a recording whose frames carry no rhythm (one frame).
DEFAULT_FPS = 10.0


def _is_recording(path):
    return (isinstance(path, (str, os.PathLike))
            and os.fspath(path).lower().endswith(SUFFIX))


def involved(anim, path):
    """True when the export reads or writes a recording."""
    return _is_recording(anim) or _is_recording(path)


def export(anim, path, fps=None, frames=None, quiet=False, *, animation=None, argv=(),
           _own_process=False):
    """fastfig.export's arguments: a recording to a video, or an animation (or a
    script making one) to a recording."""
    if fps is not None and not fps > 0:
        raise ExportError(f"fps must be positive, not {fps}")
    if _is_recording(anim):
        if _is_recording(path):
            raise ExportError(f"{os.fspath(anim)!r} is a recording already: export it "
                              "to .mp4, .webm or .gif")
        return _recording_to_video(os.fspath(anim), path, fps, frames, quiet)
    made_here = isinstance(anim, (str, os.PathLike))
    if made_here:
        source = script.Source.from_path(anim, argv, index=animation)
        anim, _ = script.run(source, own_process=_own_process)
    try:
        return _animation_to_recording(anim, path, fps, frames, quiet,
                                       os.fspath(source.path) if made_here else None)
    finally:
        if made_here:
            import matplotlib.pyplot as plt
            plt.close(anim._fig)


def _written(path, write):
    """Run write(part) on a file beside path, renamed to path once complete."""
    part = f"{os.fspath(path)}.{os.getpid()}.part"
    try:
        result = write(part)
        os.replace(part, path)
        return result
    finally:
        if os.path.exists(part):
            os.unlink(part)


def _fit(image, width, height):
    """image on a width x height canvas (a video keeps its first frame's size; a figure
    resized while recorded is shown from the top left, cut or padded transparent)."""
    if image.shape[:2] == (height, width):
        return image
    out = np.zeros((height, width, 4), np.uint8)
    h, w = min(height, image.shape[0]), min(width, image.shape[1])
    out[:h, :w] = image[:h, :w]
    return out


def recording_fps(times):
    """A recording's frame rate: one over the median gap between its frames."""
    gaps = np.diff(np.asarray(times, float))
    gaps = gaps[gaps > 0]
    return DEFAULT_FPS if not len(gaps) else float(min(max(1 / np.median(gaps), 0.1), 1000))


def _recording_to_video(rec_path, path, fps, frames, quiet):
    from ..recording.format import RecordingError, open_recording
    fmt = formats.for_path(path)
    require_av()
    from .encode import SegmentEncoder
    try:
        rec = open_recording(rec_path)
    except (RecordingError, OSError) as e:
        raise ExportError(f"cannot read the recording {rec_path!r}: {e}") from None
    with rec:
        total = len(rec) if frames is None else min(frames, len(rec))
        if total < 1:
            raise ExportError(f"the recording {rec_path!r} has no frames"
                              + (f" ({rec.damage})" if rec.damage else ""))
        fps = float(fps) if fps is not None else recording_fps(rec.times[:total])
        t0 = time.perf_counter()
        decode_s = 0.0
        bar = _progress(total, path, quiet)

        def write(part):
            nonlocal decode_s
            encoder = None
            count = 0
            t = time.perf_counter()
            for _, rgba in rec.frames():
                if count == total:
                    break
                decode_s += time.perf_counter() - t
                if encoder is None:
                    height, width = rgba.shape[:2]
                    encoder = SegmentEncoder(fmt, fps, width, height, out=part, final=True)
                encoder.add(_fit(rgba, width, height))
                count += 1
                if bar is not None:
                    bar.update(1)
                t = time.perf_counter()
            encoder.close()
            return encoder, count
        try:
            encoder, count = _written(path, write)
        finally:
            if bar is not None:
                bar.close()
        if count < total:
            warnings.warn(f"fastfig.export: {rec.damage}; the video has the {count} "
                          "frames before it", RuntimeWarning, stacklevel=3)
    return Result(os.fspath(path), count, fps, 1, time.perf_counter() - t0,
                  {"decode": decode_s, **encoder.seconds}, {})


def _animation_to_recording(anim, path, fps, frames, quiet, script_path):
    from ..codec.encoder import FrameEncoder
    from ..recording.recorder import Recorder, metadata
    from .render import FrameRenderer, default_fps, frame_count
    fps = float(fps) if fps is not None else default_fps(anim)
    total = frame_count(anim, frames)
    t0 = time.perf_counter()
    bar = _progress(total, path, quiet)
    renderer = FrameRenderer(anim)
    seconds = {"render": 0.0, "encode": 0.0}

    def write(part):
        recorder = encoder = None
        t = time.perf_counter()
        try:
            for index, rgba in renderer.frames(0, total):
                t1 = time.perf_counter()
                seconds["render"] += t1 - t
                if recorder is None:
                    height, width = rgba.shape[:2]
                    title = os.path.basename(script_path) if script_path else "animation"
                    recorder = Recorder(part, metadata("1", width, height, title=title,
                                                       source=script_path, fps=fps),
                                        clock=lambda: 0.0, background=False)
                    encoder = FrameEncoder(width, height)
                recorder.frame(bytes(encoder.encode(rgba)), encoder.image, t=index / fps)
                if bar is not None:
                    bar.update(1)
                t = time.perf_counter()
                seconds["encode"] += t - t1
        finally:
            if recorder is not None:
                recorder.close()
    try:
        _written(path, write)
    finally:
        renderer.close()
        if bar is not None:
            bar.close()
    return Result(os.fspath(path), total, fps, 1, time.perf_counter() - t0, seconds,
                  _render_stats([renderer.stats]))
