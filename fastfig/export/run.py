"""``fastfig.export``: an animation to a video file, its frame ranges rendered in parallel.

One worker: the animation is rendered and encoded here, straight into the file. More:
the frames are cut into chunks, each chunk is a job for an executor (a process pool, or
any ``concurrent.futures.Executor`` such as a Dask client's, to render on a cluster); a
job recreates the figure by running the script again, renders its frames, encodes them
into a segment starting with a keyframe and returns the segment's bytes; the segments
are joined without re-encoding. A worker process keeps the animation it recreated
between jobs of one export, so a later chunk costs no new run of the script.
"""

import concurrent.futures
import multiprocessing
import os
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from . import formats, script
from .errors import ExportError, require_av
from .script import Source

#: Chunks per worker: enough to keep workers busy to the end and move the progress bar,
#: few enough that the extra keyframes and runs of the script cost little.
CHUNKS_PER_WORKER = 2
#: No chunk shorter than this many frames (each starts with a keyframe).
MIN_CHUNK = 15
#: CPUs one export process keeps busy: it draws and converts a 1080p frame in ~5 ms while
#: x264's frame threads, fed from a thread of its own, spend ~20 ms of CPU on it, so one
#: process feeds about four cores. A second process on fewer cores only adds its costs
#: (the script run again, a background drawn, an encoder, a keyframe per segment).
CPUS_PER_WORKER = 4

_export_calls = 0


@dataclass(frozen=True)
class Job:
    export_id: str
    source: Source
    start: int
    stop: int
    total: int
    suffix: str
    fps: float
    threads: Optional[int] = None     # encoder threads (None: FFmpeg's choice)


@dataclass
class Result:
    """What an export did: frames, seconds, frames per second, and where the time went
    (render, convert, encode: seconds summed over workers) and how frames were drawn."""
    path: str
    frames: int
    fps: float
    workers: int
    seconds: float
    stages: dict
    render: dict

    @property
    def frames_per_second(self):
        return self.frames / self.seconds if self.seconds else float("inf")


def export(anim: Any, path: Union[str, "os.PathLike[str]"], fps: Optional[float] = None,
           frames: Optional[int] = None,
           workers: Union[int, concurrent.futures.Executor, None] = None,
           quiet: bool = False, *, animation: Optional[int] = None,
           argv: Sequence[str] = (), _own_process: bool = False) -> Optional["Result"]:
    """Write a matplotlib Animation (FuncAnimation, ...) to a video file.

    anim: the Animation, or the path of a script that makes one (as ``fastfig export``).
    path: the output file; its suffix picks the format: .mp4 (H.264), .webm (VP9), .gif.
    fps: frames per second of the video (default: one frame per the animation's interval).
    frames: export the first N frames (default: all, from FuncAnimation's frames=).
    workers: processes rendering frame ranges in parallel (default: one per
        CPUS_PER_WORKER CPUs, at least 1, at most 4), or a concurrent.futures.Executor,
        e.g. a Dask client's ``get_executor()``.
        Workers recreate the figure by running the script again, so the script must make
        the same figure each run; an animation made at a prompt or in a notebook is
        rendered here, in one process.
    quiet: no progress bar.
    animation, argv: for a script path, which animation (counted from 0) when it makes
        several, and the script's arguments.
    Returns a Result (frames, seconds, where the time went); None where the call only
    names the animation (a worker running the script again).
    """
    global _export_calls
    collector = script.collecting()
    if collector is not None:         # a worker running the script again: no export
        return collector.on_export(anim)
    if _caller()[0] == "__mp_main__":
        # multiprocessing (spawn, forkserver) re-imports the main script in its child
        # processes under this name: the export is the parent's to do, not theirs.
        return None
    from . import recording
    if recording.involved(anim, path):      # a .ffrec read or written: export/recording.py
        return recording.export(anim, path, fps, frames, quiet, animation=animation,
                                argv=argv, _own_process=_own_process)
    fmt = formats.for_path(path)
    require_av()
    made_here = isinstance(anim, (str, os.PathLike))
    if made_here:
        source = Source.from_path(anim, argv, index=animation)
        anim, _ = script.run(source, own_process=_own_process)
    else:
        _export_calls += 1
        source = Source.from_main(_export_calls)
    try:
        return _export(anim, source, path, fmt, fps, frames, workers, quiet)
    finally:
        if made_here:                   # the script's figures are ours: do not keep them
            import matplotlib.pyplot as plt
            plt.close(anim._fig)


def _export(anim, source, path, fmt, fps, frames, workers, quiet):
    from .render import default_fps, frame_count
    fps = float(fps) if fps is not None else default_fps(anim)
    if not fps > 0:
        raise ExportError(f"fps must be positive, not {fps}")
    total = frame_count(anim, frames)
    executor, nworkers, owned = _executor(workers, source)
    t0 = time.perf_counter()
    bar = _progress(total, path, quiet)
    # Written beside the target and renamed when complete: a failed or interrupted
    # export leaves no truncated video behind (nor clobbers an older one).
    part = f"{os.fspath(path)}.{os.getpid()}.part"
    try:
        if executor is None:
            stages, render = _export_here(anim, fmt, fps, total, part, bar)
        else:
            stages, render = _export_parallel(executor, nworkers, source, fmt, fps, total,
                                              part, bar)
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.unlink(part)
        if bar is not None:
            bar.close()
        if owned:
            executor.shutdown(wait=True, cancel_futures=True)
    return Result(os.fspath(path), total, fps, nworkers, time.perf_counter() - t0, stages,
                  render)


def _caller():
    """(the module name of the code that called into this package, the stacklevel that
    makes a warning point at it)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(__package__):
        frame, level = frame.f_back, level + 1
    return (frame.f_globals.get("__name__") if frame is not None else None), level


def _warn(message):
    warnings.warn(message, RuntimeWarning, stacklevel=_caller()[1])


def _executor(workers, source):
    """(executor or None for here, number of workers, whether we shut it down)."""
    if isinstance(workers, concurrent.futures.Executor):
        if source is None:
            raise ExportError("workers= an executor needs a script to run again, and this "
                              "animation was not made by one (a prompt or a notebook)")
        return workers, _executor_size(workers), False
    asked = workers is not None
    if workers is None:
        workers = max(1, min((os.cpu_count() or 1) // CPUS_PER_WORKER, 4))
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ExportError(f"workers must be a positive int or an Executor, not {workers!r}")
    if workers == 1:
        return None, 1, False
    if source is None:
        if asked:
            _warn("fastfig.export: this animation was not made by a script that can be "
                  "run again; rendering it in this process")
        return None, 1, False
    # fork when nothing else runs here: the workers start without importing anything
    # again (they still run the script, as a worker elsewhere would).
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and sys.platform == "linux":
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else None)
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx), workers, True


def _executor_size(executor):
    n = getattr(executor, "_max_workers", None)
    if n:
        return n
    client = getattr(executor, "_client", None)          # dask.distributed
    if client is not None:
        try:
            nthreads = client.nthreads()
            chosen = getattr(executor, "_kwargs", {}).get("workers")
            if chosen:                  # get_executor(workers=[...]): those only
                chosen = [chosen] if isinstance(chosen, str) else chosen
                nthreads = {k: v for k, v in nthreads.items() if k in set(chosen)}
            return max(1, sum(nthreads.values()))
        except Exception:
            pass
    return 2


def _progress(total, path, quiet):
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="frame", desc=os.path.basename(os.fspath(path)),
                leave=True, file=sys.stderr)


def _export_here(anim, fmt, fps, total, path, bar):
    from .encode import SegmentEncoder
    from .render import FrameRenderer
    renderer = FrameRenderer(anim)
    encoder = None
    render_s = 0.0
    try:
        t = time.perf_counter()
        for _, rgba in renderer.frames(0, total):
            render_s += time.perf_counter() - t
            if encoder is None:
                encoder = SegmentEncoder(fmt, fps, rgba.shape[1], rgba.shape[0], out=path,
                                         final=True)
            encoder.add(rgba)
            if bar is not None:
                bar.update(1)
            t = time.perf_counter()
        encoder.close()
    finally:
        if encoder is not None:
            encoder.abort()             # a failure left its thread waiting: stop it
        renderer.close()
    return {"render": render_s, **encoder.seconds}, _render_stats([renderer.stats])


def _chunks(total, nworkers):
    n = max(1, min(nworkers * CHUNKS_PER_WORKER, total // MIN_CHUNK))
    n = max(n, min(nworkers, total))
    bounds = [round(i * total / n) for i in range(n + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _export_parallel(executor, nworkers, source, fmt, fps, total, path, bar):
    from .join import join
    export_id = uuid.uuid4().hex
    # Workers of a local pool share this machine's cores: give each encoder its share
    # rather than letting every one start a thread per core.
    threads = (max(1, (os.cpu_count() or 1) // nworkers)
               if isinstance(executor, concurrent.futures.ProcessPoolExecutor) else None)
    jobs = [Job(export_id, source, a, b, total, fmt.suffix, fps, threads)
            for a, b in _chunks(total, nworkers)]
    futures = {executor.submit(render_chunk, job): i for i, job in enumerate(jobs)}
    segments = [None] * len(jobs)
    try:
        for future in concurrent.futures.as_completed(futures):
            segments[futures[future]] = future.result()
            if bar is not None:
                job = jobs[futures[future]]
                bar.update(job.stop - job.start)
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    for a, b in zip(segments, segments[1:]):
        if b["before"] is not None and a["last"] != b["before"]:
            _warn("fastfig.export: a worker's run of the script drew another frame than "
                  "the run before it: the script does not make the same figure every run "
                  "(unseeded random numbers, the clock?); the video may jump where the "
                  "pieces join")
            break
    join([(s["data"], s["frames"]) for s in segments], path, fmt, fps)
    stages = {k: sum(s["seconds"][k] for s in segments) for k in segments[0]["seconds"]}
    return stages, _render_stats([s["render"] for s in segments])


def _render_stats(all_stats):
    out = {"blitted": 0, "full": 0, "checks": 0, "backgrounds": 0, "blit_mismatch": None}
    for s in all_stats:
        for k in ("blitted", "full", "checks", "backgrounds"):
            out[k] += s[k]
        if s["blit_mismatch"] is not None and out["blit_mismatch"] is None:
            out["blit_mismatch"] = s["blit_mismatch"]
    return out


# -- the worker's side ---------------------------------------------------------------------

_worker_lock = threading.Lock()
_worker_state: dict = {}  # the animation this process recreated for one export


def render_chunk(job):
    """Render and encode frames job.start..job.stop-1 into a segment (runs in a worker
    process). Returns {"data": container bytes, "frames", "seconds", "render": stats}."""
    require_av()
    from .encode import SegmentEncoder
    from .render import FrameRenderer
    with _worker_lock:
        state = _worker_state.get("current")
        renderer = None
        if state is not None and state[0] == job.export_id and state[1].next <= job.start:
            renderer = state[1]
        else:
            _forget()
            anim, _ = script.run(job.source)
            renderer = FrameRenderer(anim)
            _worker_state["current"] = (job.export_id, renderer)
        fmt = formats.FORMATS[job.suffix]
        t = time.perf_counter()
        render_s = 0.0
        encoder = None
        stats_before = dict(renderer.stats)
        # A new run of the script also draws the frame before its range, and every chunk
        # tells its last frame's digest: the parent compares them across each join.
        first = job.start - 1 if 0 < job.start and renderer.next < job.start else job.start
        before = last = None
        try:
            for index, rgba in renderer.frames(first, job.stop):
                render_s += time.perf_counter() - t
                if index < job.start:
                    before = _digest(rgba)
                    t = time.perf_counter()
                    continue
                if index == job.stop - 1:
                    last = _digest(rgba)
                if encoder is None:
                    encoder = SegmentEncoder(fmt, job.fps, rgba.shape[1], rgba.shape[0],
                                             threads=job.threads or _dask_worker_threads())
                encoder.add(rgba)
                t = time.perf_counter()
            encoder.close()
        finally:
            if encoder is not None:
                encoder.abort()         # a failure left its thread waiting: stop it
        stats = {k: v if k == "blit_mismatch" else v - stats_before[k]
                 for k, v in renderer.stats.items()}
        if renderer.next >= job.total:      # the export's last frames: nothing follows
            _forget()
        return {"data": encoder.data(), "frames": encoder.frames,
                "seconds": {"render": render_s, **encoder.seconds}, "render": stats,
                "before": before, "last": last}


def _digest(rgba):
    import hashlib
    return hashlib.blake2b(rgba.tobytes(), digest_size=16).hexdigest()


def _dask_worker_threads():
    """In a Dask worker: its thread slots, the share of the machine it was given (its
    encoder should not start a thread per core of a machine shared with other workers)."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker
        return get_worker().state.nthreads
    except Exception:           # not in a worker, or another version's layout
        return None


def _forget():
    state = _worker_state.pop("current", None)
    if state is not None:
        renderer = state[1]
        renderer.close()
        import matplotlib.pyplot as plt
        plt.close(renderer.fig)


__all__ = ["export", "Result", "render_chunk"]
