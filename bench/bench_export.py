"""Export benchmark: fastfig.export against Animation.save(FFMpegWriter) on the same
script in the same run, frames/s against workers on a local Dask cluster, and what bounds
the speed (render, colour conversion, encoder).

    python bench/bench_export.py                  # 7 rounds, Dask 1/2/4, 120 frames 1920x1080
    python bench/bench_export.py --plot           # the same, and bench/export.png
    python bench/bench_export.py --rounds 3 --no-dask --workers 1,2

The baseline needs the ffmpeg binary (`apt-get install -y ffmpeg`); fastfig needs none.
Both encode H.264 with libx264's defaults (preset medium, crf 23, threads auto), yuv420p,
30 frames/s. Each round times the baseline and fastfig back to back, in alternating
order, so load from elsewhere falls on both alike: read the ratios, their median over the
rounds and their spread. Quality: each decoded frame's PSNR against a full Agg render.
"""

import argparse
import json
import os
import runpy
import shutil
import statistics
import tempfile
import time

import matplotlib

matplotlib.use("agg")

import av  # noqa: E402
import numpy as np  # noqa: E402
from av.video.reformatter import ColorRange, Colorspace  # noqa: E402
from matplotlib.animation import FFMpegWriter  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

import fastfig  # noqa: E402
from fastfig._encode import rgba_to_yuv420  # noqa: E402
from fastfig.export.colour import MATRIX, YUV420Converter  # noqa: E402
from fastfig.export.encode import QUEUED, SegmentEncoder  # noqa: E402
from fastfig.export.formats import FORMATS  # noqa: E402
from fastfig.export.render import FrameRenderer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "export_line.py")
FPS = 30
FRAMES = 120
#: The issue's target: fastfig.export this many times the baseline's frames/s.
TARGET = 2.5


def load():
    return runpy.run_path(SCRIPT, run_name="bench")


class Clock:
    """Wall seconds and CPU seconds of this process (all its threads) and of the child
    processes that ended meanwhile (ffmpeg, a process pool's workers). CPU seconds per
    frame hardly depend on what else runs on the machine; wall seconds do."""

    def __enter__(self):
        self.wall = time.perf_counter()
        self.cpu = self._cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = self._cpu() - self.cpu

    @staticmethod
    def _cpu():
        import resource
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + c.ru_utime + c.ru_stime


def baseline(out):
    """Animation.save with FFMpegWriter, as a matplotlib user makes a video: the script
    run and the save timed together (fastfig.export runs the script too)."""
    with Clock() as clock:
        g = load()
        g["anim"].save(out, writer=FFMpegWriter(fps=FPS, codec="libx264",
                                                extra_args=["-pix_fmt", "yuv420p"]))
    import matplotlib.pyplot as plt
    plt.close(g["fig"])
    return clock


def ours(out, workers):
    with Clock() as clock:
        result = fastfig.export(SCRIPT, out, fps=FPS, workers=workers, quiet=True)
    return clock, result


def references(n):
    g = load()
    anim = g["anim"]
    canvas = FigureCanvasAgg(g["fig"])
    canvas._is_saving = True
    anim._init_draw()
    out = []
    for data in list(anim.new_saved_frame_seq())[:n]:
        anim._draw_frame(data)
        canvas.draw()
        out.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return out


def psnrs(path, refs):
    out = []
    with av.open(path) as c:
        for f, r in zip(c.decode(video=0), refs):
            mse = np.mean((f.to_ndarray(format="rgb24").astype(np.float64) - r) ** 2)
            out.append(99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse))
    return out


def count_frames(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        return {"frames": sum(1 for _ in c.decode(s)), "rate": str(s.average_rate),
                "pix_fmt": cc.pix_fmt, "tags": [int(cc.color_primaries), int(cc.color_trc),
                                                int(cc.colorspace), int(cc.color_range)],
                "bytes": os.path.getsize(path)}


def stages(n):
    """Each stage alone in this process, CPU milliseconds per frame (all threads): a full
    render (what Animation.save draws), a blitted render, colour conversion (the changed
    pixels, and whole frames: the kernel and swscale), x264 on ready yuv420p pictures (its
    own threads, as exported; one thread), and x264's wall frames/s alone: the ceiling of
    any exporter that uses it with these settings on this machine."""
    cpu = time.process_time
    g = load()
    fig, update = g["fig"], g["update"]
    canvas = FigureCanvasAgg(fig)
    canvas._is_saving = True
    t = cpu()
    for i in range(n):
        update(i)
        canvas.draw()
    full = (cpu() - t) / n
    import matplotlib.pyplot as plt
    plt.close(fig)

    g = load()
    renderer = FrameRenderer(g["anim"])
    conv = ring = None
    pictures = []
    blit = convert = convert_ring = whole = swscale = 0.0
    frames = renderer.frames(0, n)
    while True:           # each frame rendered, converted each way, then let go
        t = cpu()
        try:
            _, rgba = next(frames)
        except StopIteration:
            break
        blit += cpu() - t
        if conv is None:
            h, w = rgba.shape[:2]
            conv = YUV420Converter(w, h)
            ring = YUV420Converter(w, h, depth=QUEUED + 2)
            planes = [np.zeros((h, w), np.uint8), np.zeros((h // 2, w // 2), np.uint8),
                      np.zeros((h // 2, w // 2), np.uint8)]
            everything = np.array([[0, 0, w, h]], np.int32)
        t = cpu()
        f = conv.convert(rgba)
        convert += cpu() - t
        pictures.append(av.VideoFrame.from_ndarray(f.to_ndarray(), format="yuv420p"))
        t = cpu()
        ring.convert(rgba)
        convert_ring += cpu() - t
        t = cpu()
        rgba_to_yuv420(rgba, *planes, everything, 1, MATRIX)
        whole += cpu() - t
        t = cpu()
        av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(
            format="yuv420p", src_colorspace=Colorspace.ITU709,
            dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG, threads=1)
        swscale += cpu() - t
    renderer.close()
    plt.close(g["fig"])

    def x264(threads):
        with tempfile.TemporaryDirectory() as d:
            enc = SegmentEncoder(FORMATS[".mp4"], FPS, w, h, out=os.path.join(d, "x.mp4"),
                                 threads=threads)
            with Clock() as clock:
                for f in pictures:
                    enc._put((f, enc.frames))
                    enc.frames += 1
                enc.close()
            return clock

    auto, one = x264(None), x264(1)
    ms = {"full_render": full, "blit_render": blit / n, "convert_changed": convert / n,
          "convert_changed_ring": convert_ring / n, "convert_whole_kernel": whole / n,
          "convert_whole_swscale": swscale / n, "x264_threads": auto.cpu / n,
          "x264_one_thread": one.cpu / n}
    out = {k: round(1000 * v, 2) for k, v in ms.items()}
    out["changed_fraction"] = round(conv.stats["pixels"] / n, 3)
    out["changed_fraction_ring"] = round(ring.stats["pixels"] / n, 3)
    out["x264_alone_fps"] = round(n / auto.wall, 1)
    out["x264_one_thread_fps"] = round(n / one.wall, 1)
    return out


def dask_scaling(sizes, tmp, repeat):
    """Frames/s of exports on a local Dask cluster, its executor limited to the first n
    workers (one thread each), each size timed `repeat` times in turn; the median."""
    from distributed import Client, LocalCluster
    rows = {n: [] for n in sizes}
    with LocalCluster(n_workers=max(sizes), threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        addresses = sorted(client.scheduler_info()["workers"])
        for _ in range(repeat):
            for n in sizes:
                executor = client.get_executor(workers=addresses[:n],
                                               allow_other_workers=False)
                out = os.path.join(tmp, f"dask{n}.mp4")
                clock, result = ours(out, executor)
                rows[n].append({"fps": result.frames / clock.wall,
                                "frames": count_frames(out)["frames"],
                                "load": os.getloadavg()[0]})
    return {n: {"fps": statistics.median(r["fps"] for r in runs),
                "runs": [round(r["fps"], 1) for r in runs],
                "frames": min(r["frames"] for r in runs)} for n, runs in rows.items()}


def spread(values):
    """median, min, max, quartiles of a list of numbers."""
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "q1": q[0], "q3": q[2]}


def summarise(results, workers):
    for w in workers:
        rounds = results["rounds"]
        ratios = [r[f"workers={w}"] / r["baseline"] for r in rounds]
        cpu = [r["baseline_cpu_ms"] / r[f"cpu_ms{w}"] for r in rounds]
        results[f"ratio{w}"] = spread(ratios)
        results[f"ratio{w}"]["rounds"] = [round(x, 2) for x in ratios]
        results[f"ratio{w}"]["met"] = sum(x >= TARGET for x in ratios)
        results[f"cpu_ratio{w}"] = spread(cpu)
        r, c = results[f"ratio{w}"], results[f"cpu_ratio{w}"]
        print(f"workers={w}: median {r['median']:.2f}x the baseline's frames/s, "
              f"spread {r['min']:.2f}-{r['max']:.2f} (quartiles {r['q1']:.2f}-{r['q3']:.2f}); "
              f">= {TARGET}x in {r['met']} of {len(ratios)} rounds; "
              f"{c['median']:.2f}x less CPU per frame ({c['min']:.2f}-{c['max']:.2f})")


def plot(results, path):
    """Frames/s of baseline and fastfig (median, whiskers min-max), the ratio of each
    round against the target, and frames/s on a Dask cluster against its workers."""
    import matplotlib.pyplot as plt
    rounds = results["rounds"]
    names = ["baseline"] + [k for k in rounds[0] if k.startswith("workers=")]
    fps = [[r[k] for r in rounds] for k in names]
    med = [statistics.median(v) for v in fps]
    err = [[m - min(v) for m, v in zip(med, fps)], [max(v) - m for m, v in zip(med, fps)]]
    labels = ["Animation.save\n(FFMpegWriter)"] + [f"fastfig.export\n{k}" for k in names[1:]]
    fig, axes = plt.subplots(1, 3 if "dask" in results else 2, figsize=(13, 3.9),
                             layout="constrained")
    axes[0].bar(labels, med, yerr=err, capsize=4, color=["0.6"] + ["C0"] * (len(names) - 1))
    axes[0].set_ylabel(f"frames/s (median of {len(rounds)} rounds)")
    for i, k in enumerate(names[1:]):
        ratios = [r[k] / r["baseline"] for r in rounds]
        cpu = [r["baseline_cpu_ms"] / r[f"cpu_ms{k.split('=')[1]}"] for r in rounds]
        axes[1].plot(range(1, len(rounds) + 1), ratios, "o-", color=f"C{i}",
                     label=f"{k} frames/s: median {statistics.median(ratios):.2f}x")
        axes[1].plot(range(1, len(rounds) + 1), cpu, "s:", color=f"C{i}", mfc="none",
                     label=f"{k} CPU per frame: median {statistics.median(cpu):.2f}x less")
    axes[1].axhline(TARGET, color="0.5", ls="--", lw=1, label=f"target {TARGET}x")
    axes[1].set_xlabel("round (baseline and fastfig back to back)")
    axes[1].set_ylabel("fastfig against the baseline")
    axes[1].set_ylim(0, None)
    axes[1].set_xticks(range(1, len(rounds) + 1))
    axes[1].legend(fontsize=8)
    if "dask" in results:
        n = sorted(results["dask"], key=int)
        axes[2].plot([int(k) for k in n], [results["dask"][k]["fps"] for k in n], "o-")
        axes[2].set_xlabel("Dask workers (1 thread each)")
        axes[2].set_ylabel("frames/s (median)")
        axes[2].set_xticks([int(k) for k in n])
        axes[2].set_ylim(0, None)
    loads = [r["load"] for r in rounds]
    fig.suptitle(f"{FRAMES} frames 1920x1080 to H.264 on {results['cpus']} CPUs "
                 f"(load average {min(loads):.1f}-{max(loads):.1f})")
    fig.savefig(path, dpi=80)
    print("plot:", path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--workers", default="1", help="fastfig.export workers= to time against "
                   "the baseline in each round, comma-separated (default 1: the default "
                   "below 8 CPUs)")
    p.add_argument("--dask", default="1,2,4", help="Dask cluster sizes (default 1,2,4)")
    p.add_argument("--dask-repeat", type=int, default=2)
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--no-stages", action="store_true", help="skip timing stages alone")
    p.add_argument("--json", help="write the results here too")
    p.add_argument("--plot", nargs="?", const=os.path.join(HERE, "export.png"),
                   help="draw the results into this PNG (default bench/export.png)")
    p.add_argument("--plot-from", help="only draw the results of an earlier --json run")
    args = p.parse_args()
    if args.plot_from:
        with open(args.plot_from) as f:
            plot(json.load(f), args.plot or os.path.join(HERE, "export.png"))
        return
    if shutil.which("ffmpeg") is None:
        raise SystemExit("the baseline needs the ffmpeg binary: apt-get install -y ffmpeg")
    workers = [int(w) for w in args.workers.split(",")]
    n = FRAMES
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    results = {"cpus": os.cpu_count(), "load_start": os.getloadavg()[0], "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        base_path = os.path.join(tmp, "mpl.mp4")
        for r in range(args.rounds):
            row = {"load": os.getloadavg()[0]}
            order = ["save", *workers] if r % 2 == 0 else [*workers, "save"]
            for what in order:
                if what == "save":
                    clock = baseline(base_path)
                    row["baseline"] = n / clock.wall
                    row["baseline_cpu_ms"] = 1000 * clock.cpu / n
                    continue
                clock, result = ours(os.path.join(tmp, f"ours{what}.mp4"), what)
                row[f"workers={what}"] = n / clock.wall
                row[f"cpu_ms{what}"] = 1000 * clock.cpu / n
                row[f"stages{what}"] = {k: round(1000 * v / n, 2)
                                        for k, v in result.stages.items()}
                row[f"render{what}"] = result.render
            results["rounds"].append(row)
            print(f"round {r + 1} (load {row['load']:.1f}): baseline {row['baseline']:.1f} "
                  f"frames/s, {row['baseline_cpu_ms']:.0f} CPU ms/frame; " + "; ".join(
                      f"workers={w} {row[f'workers={w}']:.1f} frames/s "
                      f"({row[f'workers={w}'] / row['baseline']:.2f}x), "
                      f"{row[f'cpu_ms{w}']:.0f} CPU ms/frame" for w in workers), flush=True)
        summarise(results, workers)
        refs = references(n)
        p_base = psnrs(base_path, refs)
        p_ours = psnrs(os.path.join(tmp, f"ours{workers[0]}.mp4"), refs)
        worst_gap = max(b - o for b, o in zip(p_base, p_ours))
        results["psnr"] = {"ours_min": min(p_ours), "ours_mean": statistics.mean(p_ours),
                           "baseline_min": min(p_base),
                           "baseline_mean": statistics.mean(p_base),
                           "worst_frame_gap_db": worst_gap}
        results["files"] = {"baseline": count_frames(base_path),
                            **{f"workers={w}": count_frames(os.path.join(tmp, f"ours{w}.mp4"))
                               for w in workers}}
        print("PSNR against Agg renders (dB):", json.dumps(
            {k: round(v, 2) for k, v in results["psnr"].items()}))
        print("files:", json.dumps(results["files"]))
        if not args.no_stages:
            results["stages"] = stages(n)
            print("stages alone (CPU ms per frame):", json.dumps(results["stages"]))
        if not args.no_dask:
            results["dask"] = dask_scaling([int(x) for x in args.dask.split(",")], tmp,
                                           args.dask_repeat)
            print("dask frames/s (median; runs):", json.dumps(
                {k: [round(v["fps"], 1), v["runs"], v["frames"]]
                 for k, v in results["dask"].items()}))
    results["load_end"] = os.getloadavg()[0]
    print(f"load average {results['load_end']:.1f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if args.plot:
        plot(json.loads(json.dumps(results, default=str)), args.plot)


if __name__ == "__main__":
    main()
