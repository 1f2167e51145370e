"""Export benchmark: fastfig.export against Animation.save(FFMpegWriter) on the same
script in the same run, frames/s against workers on a local Dask cluster, and what bounds
the speed (render, colour conversion, encoder).

    python bench/bench_export.py                    # 120 frames, 1920x1080 (bench/export_line.py)
    python bench/bench_export.py --rounds 3 --no-dask

The baseline needs the ffmpeg binary (`apt-get install -y ffmpeg`); fastfig needs none.
Both encode H.264 with libx264's defaults (preset medium, crf 23), yuv420p, 30 frames/s.
Rounds alternate baseline and fastfig, so a busy machine slows both alike: read the
ratios. Quality: each decoded frame's PSNR against a full Agg render of that frame.
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
from matplotlib.animation import FFMpegWriter  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

import fastfig  # noqa: E402
from fastfig.export.colour import YUV420Converter  # noqa: E402
from fastfig.export.encode import SegmentEncoder  # noqa: E402
from fastfig.export.formats import FORMATS  # noqa: E402
from fastfig.export.render import FrameRenderer  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_line.py")
FPS = 30


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
    render (what Animation.save draws), a blitted render, colour conversion (changed
    pixels; swscale on whole frames), x264 on ready yuv420p pictures (its threads; one)."""
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
    conv = None
    pictures = []
    blit = convert = swscale = 0.0
    frames = renderer.frames(0, n)
    while True:           # each frame rendered, converted both ways, then let go
        t = cpu()
        try:
            _, rgba = next(frames)
        except StopIteration:
            break
        blit += cpu() - t
        if conv is None:
            conv = YUV420Converter(rgba.shape[1], rgba.shape[0])
        t = cpu()
        f = conv.convert(rgba)
        convert += cpu() - t
        pictures.append(av.VideoFrame.from_ndarray(f.to_ndarray(), format="yuv420p"))
        t = cpu()
        conv._whole(rgba)
        swscale += cpu() - t
    blit, convert, swscale = blit / n, convert / n, swscale / n
    h, w = rgba.shape[:2]
    renderer.close()
    plt.close(g["fig"])

    def x264(threads):
        with tempfile.TemporaryDirectory() as d:
            enc = SegmentEncoder(FORMATS[".mp4"], FPS, w, h, out=os.path.join(d, "x.mp4"),
                                 threads=threads)
            with Clock() as clock:
                for i, f in enumerate(pictures):
                    f.pts = i
                    enc._mux(enc.stream.encode(f))
                enc.close()
            return clock.cpu / n

    ms = {"full_render": full, "blit_render": blit, "convert_changed": convert,
          "convert_swscale_whole": swscale, "x264_all_threads": x264(None),
          "x264_one_thread": x264(1)}
    out = {k: round(1000 * v, 2) for k, v in ms.items()}
    out["changed_fraction"] = round(conv.stats["pixels"] / n, 3)
    return out


def dask_scaling(n_workers_list, tmp):
    from distributed import Client, LocalCluster
    most = max(n_workers_list)
    rows = {}
    with LocalCluster(n_workers=most, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        addresses = sorted(client.scheduler_info()["workers"])
        for n in n_workers_list:
            executor = client.get_executor(workers=addresses[:n], allow_other_workers=False)
            out = os.path.join(tmp, f"dask{n}.mp4")
            clock, result = ours(out, executor)
            rows[n] = {"seconds": clock.wall, "fps": result.frames / clock.wall,
                       "frames": count_frames(out)["frames"]}
    return rows


def plot(results, path):
    """Frames/s and CPU ms per frame of baseline and fastfig, and frames/s on Dask."""
    import matplotlib.pyplot as plt
    rounds = results["rounds"]
    names = ["baseline"] + [k for k in rounds[0] if k.startswith("workers=")]
    fps = [statistics.median(r[k] for r in rounds) for k in names]
    cpu = [statistics.median(r["baseline_cpu_ms" if k == "baseline" else
                               f"cpu_ms{k.split('=')[1]}"] for r in rounds) for k in names]
    labels = ["Animation.save\n(FFMpegWriter)"] + [f"fastfig.export\n{k}" for k in names[1:]]
    fig, axes = plt.subplots(1, 3 if "dask" in results else 2, figsize=(12, 3.8),
                             layout="constrained")
    axes[0].bar(labels, fps, color=["0.6"] + ["C0"] * (len(names) - 1))
    axes[0].set_ylabel("frames/s (median of rounds)")
    axes[1].bar(labels, cpu, color=["0.6"] + ["C0"] * (len(names) - 1))
    axes[1].set_ylabel("CPU ms per frame")
    if "dask" in results:
        n = sorted(results["dask"], key=int)
        axes[2].plot([int(k) for k in n], [results["dask"][k]["fps"] for k in n], "o-")
        axes[2].set_xlabel("Dask workers")
        axes[2].set_ylabel("frames/s")
        axes[2].set_xticks([int(k) for k in n])
    fig.suptitle(f"120 frames 1920x1080 to H.264 on {results['cpus']} shared cores "
                 f"(load average {results['load_start']:.0f}-{results['load_end']:.0f})")
    fig.savefig(path, dpi=80)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workers", default="1,2", help="local process pool sizes to time "
                   "against the baseline (default 1,2)")
    p.add_argument("--dask", default="1,2,4", help="Dask cluster sizes (default 1,2,4)")
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--json", help="write the results here too")
    p.add_argument("--plot", help="draw the results into this PNG")
    p.add_argument("--plot-from", help="only draw the results of an earlier --json run")
    args = p.parse_args()
    if args.plot_from:
        with open(args.plot_from) as f:
            plot(json.load(f), args.plot or "export.png")
        return
    if shutil.which("ffmpeg") is None:
        raise SystemExit("the baseline needs the ffmpeg binary: apt-get install -y ffmpeg")
    workers = [int(w) for w in args.workers.split(",")]
    n = 120
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    results = {"cpus": os.cpu_count(), "load_start": os.getloadavg()[0], "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        base_path = os.path.join(tmp, "mpl.mp4")
        for r in range(args.rounds):
            clock = baseline(base_path)
            row = {"baseline": n / clock.wall, "baseline_cpu_ms": 1000 * clock.cpu / n}
            for w in workers:
                clock, result = ours(os.path.join(tmp, f"ours{w}.mp4"), w)
                row[f"workers={w}"] = n / clock.wall
                row[f"cpu_ms{w}"] = 1000 * clock.cpu / n
                row[f"stages{w}"] = {k: round(1000 * v / n, 2) for k, v in result.stages.items()}
                row[f"render{w}"] = result.render
            results["rounds"].append(row)
            print(f"round {r + 1}: baseline {row['baseline']:.1f} frames/s, "
                  f"{row['baseline_cpu_ms']:.0f} CPU ms/frame; " + "; ".join(
                      f"workers={w} {row[f'workers={w}']:.1f} frames/s "
                      f"({row[f'workers={w}'] / row['baseline']:.2f}x), "
                      f"{row[f'cpu_ms{w}']:.0f} CPU ms/frame" for w in workers))
        for w in workers:
            ratios = [row[f"workers={w}"] / row["baseline"] for row in results["rounds"]]
            cpu = [row["baseline_cpu_ms"] / row[f"cpu_ms{w}"] for row in results["rounds"]]
            results[f"ratio{w}"] = statistics.median(ratios)
            results[f"cpu_ratio{w}"] = statistics.median(cpu)
            print(f"workers={w}: median {results[f'ratio{w}']:.2f}x the baseline's frames/s "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}); it spends "
                  f"1/{results[f'cpu_ratio{w}']:.2f} of the baseline's CPU per frame")
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
        print("PSNR against Agg renders (dB):", json.dumps(results["psnr"]))
        print("files:", json.dumps(results["files"]))
        results["stages"] = stages(60)
        print("stages alone (CPU ms per frame):", json.dumps(results["stages"]))
        if not args.no_dask:
            results["dask"] = dask_scaling([int(x) for x in args.dask.split(",")], tmp)
            print("dask:", json.dumps({k: round(v["fps"], 1) for k, v in
                                       results["dask"].items()}))
    results["load_end"] = os.getloadavg()[0]
    print(f"load average {results['load_end']:.1f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if args.plot:
        plot(json.loads(json.dumps(results, default=str)), args.plot)


if __name__ == "__main__":
    main()
