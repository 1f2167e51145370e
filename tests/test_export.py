"""fastfig.export and `fastfig export`: every frame present, at the asked rate, tagged
BT.709 yuv420p, each decoded frame close to matplotlib's own Agg render of it; blitted
frames equal full renders byte for byte; parallel workers, a Dask cluster and one process
make the same video."""

import os
import runpy
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

av = pytest.importorskip("av")

import fastfig  # noqa: E402
from fastfig.export import ExportError  # noqa: E402
from fastfig.export.render import FrameRenderer  # noqa: E402

#: Each decoded frame against the Agg render of that frame (H.264 at x264's default
#: quality on a line plot gives ~38 dB; matplotlib's own FFMpegWriter video the same).
MIN_PSNR = 35.0

SCRIPT = """\
import numpy as np
import matplotlib.pyplot as plt
from matplotlib.animation import FuncAnimation

fig, ax = plt.subplots(figsize=({w} / 100, {h} / 100), dpi=100)
x = np.linspace(0, 4 * np.pi, 500)
(line,) = ax.plot(x, np.sin(x), lw=2)
ax.set_ylim(-1.2, 1.2)
ax.grid(True)
{extra}

def update(i):
    line.set_ydata(np.sin(x + 0.3 * i))
{update_extra}
    return [line]

anim = FuncAnimation(fig, update, frames={frames}, interval=40, blit={blit})
{tail}
plt.show()
"""


def write_script(path, w=480, h=270, frames=12, blit=True, extra="", update_extra="",
                 tail=""):
    path.write_text(SCRIPT.format(w=w, h=h, frames=frames, blit=blit, extra=extra,
                                  update_extra=textwrap.indent(update_extra, "    "),
                                  tail=tail))
    return path


def load(script):
    """The script's globals, run here (no animation started, nothing shown)."""
    return runpy.run_path(str(script), run_name="reference")


def references(script, n):
    """Full Agg renders of frames 0..n-1, as Animation.save draws them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    g = load(script)
    anim = g["anim"]
    canvas = FigureCanvasAgg(g["fig"])
    canvas._is_saving = True        # animated artists are drawn, the animation not started
    anim._init_draw()
    out = []
    for data in list(anim.new_saved_frame_seq())[:n]:
        anim._draw_frame(data)
        canvas.draw()
        out.append(np.asarray(canvas.buffer_rgba()).copy())
    close_all(g)
    return out


def close_all(g):
    import matplotlib.pyplot as plt
    plt.close(g["fig"])


def decode(path):
    """Every frame of the video as RGB, and its stream."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
        info = {"rate": stream.average_rate, "frames": stream.frames,
                "pix_fmt": stream.codec_context.pix_fmt,
                "tags": (stream.codec_context.color_primaries, stream.codec_context.color_trc,
                         stream.codec_context.colorspace, stream.codec_context.color_range)}
    return frames, info


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def assert_close_to(frames, refs, bound=MIN_PSNR):
    assert len(frames) == len(refs)
    worst = min(psnr(f, r[..., :3]) for f, r in zip(frames, refs))
    assert worst > bound, worst


# -- drawing -------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(480, 270), (643, 361)])   # 643x361: axes edges fall
def test_blitted_frames_equal_full_renders(tmp_path, size):  # inside pixel columns
    script = write_script(tmp_path / "a.py", *size, frames=10)
    refs = references(script, 10)
    g = load(script)
    renderer = FrameRenderer(g["anim"])
    try:
        got = [rgba.copy() for _, rgba in renderer.frames(0, 10)]
    finally:
        renderer.close()
        close_all(g)
    assert renderer.stats["blitted"] == 10 and renderer.stats["full"] == 0
    assert renderer.stats["blit_mismatch"] is None
    for g, r in zip(got, refs):
        assert g.tobytes() == r.tobytes()


def test_partly_covered_edge_column(tmp_path):
    # The line runs out of the axes (clipped there) above the spines; the axes' right
    # edge at x = 578.7 covers column 578 in part. Restoring each axes' box (what
    # matplotlib's blitting does: copy_from_bbox(ax.bbox)) leaves the previous frame's
    # line in that column; restoring the whole background does not.
    script = write_script(tmp_path / "a.py", 643, 361, frames=8,
                          extra="ax.set_xlim(0.5, 12)\nline.set_zorder(3)")
    refs = references(script, 8)
    g = load(script)
    renderer = FrameRenderer(g["anim"])
    got = [rgba.copy() for _, rgba in renderer.frames(0, 8)]
    renderer.close()
    close_all(g)
    assert renderer.stats["blitted"] == 8 and renderer.stats["blit_mismatch"] is None
    assert all(a.tobytes() == r.tobytes() for a, r in zip(got, refs))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    g = load(script)
    ax, line, canvas = g["ax"], g["line"], FigureCanvasAgg(g["fig"])
    canvas.mpl_disconnect(g["anim"]._first_draw_id)     # drawing must not start it
    line.set_animated(True)
    canvas.draw()
    box = canvas.copy_from_bbox(ax.bbox)
    stale = set()
    for i, ref in enumerate(refs[1:], 1):
        g["update"](i)
        canvas.restore_region(box)
        ax.draw_artist(line)
        differ = (np.asarray(canvas.buffer_rgba()) != ref).any(axis=2)
        stale |= set(np.nonzero(differ)[1].tolist())
    close_all(g)
    assert stale == {578}


def test_blitting_falls_back_to_full_renders_when_they_differ(tmp_path):
    # An opaque patch above the line: a full render hides the line under it, a blit
    # would draw the line over it. The first check sees it; every frame stays right.
    script = write_script(tmp_path / "a.py", frames=8, extra=(
        "ax.add_patch(plt.Rectangle((4, -1.2), 3, 2.4, color='tab:orange', zorder=5))"))
    refs = references(script, 8)
    g = load(script)
    renderer = FrameRenderer(g["anim"])
    got = [rgba.copy() for _, rgba in renderer.frames(0, 8)]
    renderer.close()
    close_all(g)
    assert renderer.stats["blit_mismatch"] == 0 and renderer.stats["full"] == 7
    assert all(g.tobytes() == r.tobytes() for g, r in zip(got, refs))


def test_background_redrawn_when_the_frame_function_changes_other_artists(tmp_path):
    script = write_script(tmp_path / "a.py", frames=6, update_extra="ax.set_title(f'frame {i}')")
    refs = references(script, 6)
    g = load(script)
    renderer = FrameRenderer(g["anim"])
    got = [rgba.copy() for _, rgba in renderer.frames(0, 6)]
    renderer.close()
    close_all(g)
    assert renderer.stats["backgrounds"] == 6 and renderer.stats["blit_mismatch"] is None
    assert all(g.tobytes() == r.tobytes() for g, r in zip(got, refs))


def test_later_ranges_replay_the_frame_function(tmp_path):
    # A frame function that accumulates state: a range drawn alone equals the same
    # frames of an uninterrupted run.
    script = write_script(tmp_path / "a.py", frames=10, extra="trail = []",
                          update_extra="trail.append(i)\nline.set_linewidth(1 + len(trail) % 4)")
    refs = references(script, 10)
    g = load(script)
    renderer = FrameRenderer(g["anim"])
    got = [rgba.copy() for _, rgba in renderer.frames(6, 10)]
    renderer.close()
    close_all(g)
    assert all(g.tobytes() == r.tobytes() for g, r in zip(got, refs[6:]))


# -- encoding ------------------------------------------------------------------------------

def test_mp4_1080p(tmp_path):
    script = write_script(tmp_path / "a.py", 1920, 1080, frames=8)
    out = tmp_path / "a.mp4"
    result = fastfig.export(str(script), out, fps=25, workers=1, quiet=True)
    frames, info = decode(out)
    assert result.frames == 8 and info["frames"] == 8 and len(frames) == 8
    assert info["rate"] == 25
    assert frames[0].shape == (1080, 1920, 3)
    assert info["pix_fmt"] == "yuv420p"
    assert info["tags"] == (1, 1, 1, 1)     # BT.709 primaries, transfer, matrix; limited
    assert_close_to(frames, references(script, 8))


def test_odd_size_and_default_fps(tmp_path):
    script = write_script(tmp_path / "a.py", 321, 201, frames=5)
    out = tmp_path / "a.mp4"
    fastfig.export(str(script), out, workers=1, quiet=True)
    frames, info = decode(out)
    assert info["rate"] == 25                   # interval=40 ms
    assert frames[0].shape == (202, 322, 3)     # 4:2:0 needs even sizes: edge repeated
    refs = [np.pad(r, ((0, 1), (0, 1), (0, 0)), mode="edge") for r in references(script, 5)]
    assert_close_to(frames, refs, bound=32)     # a small, dense picture: ~34 dB at crf 23


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 24-frame animation exported by one process: the reference video."""
    d = tmp_path_factory.mktemp("small")
    script = write_script(d / "s.py", frames=24)
    out = d / "one.mp4"
    fastfig.export(str(script), out, workers=1, quiet=True)
    frames, _ = decode(out)
    return script, frames


def test_parallel_workers_make_the_same_video(small, tmp_path):
    script, one = small
    out = tmp_path / "two.mp4"
    result = fastfig.export(str(script), out, workers=2, quiet=True)
    assert result.workers == 2
    two, info = decode(out)
    assert len(two) == 24 and info["frames"] == 24
    assert min(psnr(a, b) for a, b in zip(one, two)) > MIN_PSNR
    assert_close_to(two, references(script, 24))
    with av.open(str(out)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    dts = [p.dts for p in packets]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    assert sum(p.is_keyframe for p in packets) >= 2      # each segment starts with one


def test_dask_cluster_executor(small, tmp_path):
    distributed = pytest.importorskip("distributed")
    script, one = small
    out = tmp_path / "dask.mp4"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = fastfig.export(str(script), out, workers=client.get_executor(), quiet=True)
    assert result.workers == 2
    frames, _ = decode(out)
    assert len(frames) == 24
    assert min(psnr(a, b) for a, b in zip(one, frames)) > MIN_PSNR


def test_a_script_that_exports_itself(tmp_path):
    # fastfig.export called by the script: the workers run it again and stop at the call.
    out = tmp_path / "self.mp4"
    script = write_script(tmp_path / "a.py", frames=20, tail=(
        "import fastfig\n"
        f"fastfig.export(anim, {str(out)!r}, workers=2, quiet=True)\n"
        "raise SystemExit(3)   # a worker never gets here\n"))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr
    frames, _ = decode(out)
    assert len(frames) == 20
    assert_close_to(frames, references_from_running(script, 20))


def references_from_running(script, n):
    # The script exports when run as __main__; as "reference" it stops before
    # (SystemExit is raised after export, which is skipped here).
    text = script.read_text().split("import fastfig\n")[0]
    ref = script.with_name("ref.py")
    ref.write_text(text)
    return references(ref, n)


@pytest.mark.parametrize("suffix, pix_fmt", [(".webm", "yuv420p"), (".gif", "bgra")])
def test_webm_and_gif(tmp_path, suffix, pix_fmt):
    script = write_script(tmp_path / "a.py", 320, 180, frames=6)
    out = tmp_path / f"a{suffix}"
    fastfig.export(str(script), out, workers=2, quiet=True)
    frames, info = decode(out)
    assert len(frames) == 6 and info["pix_fmt"] == pix_fmt
    assert_close_to(frames, references(script, 6), bound=35 if suffix == ".webm" else 20)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")
def test_as_close_as_matplotlibs_own_video(tmp_path):
    """Each frame within 2 dB PSNR of what Animation.save(FFMpegWriter) makes of it."""
    from matplotlib.animation import FFMpegWriter
    script = write_script(tmp_path / "a.py", 640, 360, frames=10)
    refs = references(script, 10)
    ours = tmp_path / "ours.mp4"
    fastfig.export(str(script), ours, fps=25, workers=1, quiet=True)
    theirs = tmp_path / "mpl.mp4"
    g = load(script)
    g["anim"].save(str(theirs), writer=FFMpegWriter(
        fps=25, codec="libx264", extra_args=["-pix_fmt", "yuv420p"]))
    close_all(g)
    a, _ = decode(ours)
    b, _ = decode(theirs)
    assert len(a) == len(b) == 10
    for fa, fb, r in zip(a, b, refs):
        assert psnr(fa, r[..., :3]) > psnr(fb, r[..., :3]) - 2


# -- errors --------------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fastfig.cli", "export", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_writes_the_video(tmp_path):
    script = write_script(tmp_path / "a.py", 320, 180, frames=6)
    out = tmp_path / "a.mp4"
    proc = run_cli(str(script), str(out), "--fps", "10", "--frames", "4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    frames, info = decode(out)
    assert len(frames) == 4 and info["rate"] == 10


def test_cli_errors(tmp_path):
    plain = tmp_path / "plain.py"
    plain.write_text("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n")
    proc = run_cli(str(plain), str(tmp_path / "x.mp4"))
    assert proc.returncode == 2 and "creates no matplotlib animation" in proc.stderr
    script = write_script(tmp_path / "a.py", frames=3)
    proc = run_cli(str(script), str(tmp_path / "x.avi"))
    assert proc.returncode == 2 and ".mp4, .webm, .gif" in proc.stderr
    proc = run_cli(str(tmp_path / "missing.py"), str(tmp_path / "x.mp4"))
    assert proc.returncode == 2 and "cannot read the script" in proc.stderr
    proc = run_cli(str(script), str(tmp_path / "x.mp4"), "--workers", "0")
    assert proc.returncode == 2 and "must be positive" in proc.stderr
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.filterwarnings("ignore:frames=None:UserWarning")
def test_errors_in_python(tmp_path, monkeypatch):
    endless = write_script(tmp_path / "e.py", frames=None)
    with pytest.raises(ExportError, match="no end"):
        fastfig.export(str(endless), tmp_path / "e.mp4", quiet=True)
    two = write_script(tmp_path / "t.py", frames=3,
                       tail="anim2 = FuncAnimation(fig, update, frames=3, blit=True)")
    with pytest.raises(ExportError, match="creates 2 animations"):
        fastfig.export(str(two), tmp_path / "t.mp4", quiet=True)
    fastfig.export(str(two), tmp_path / "t.mp4", animation=1, workers=1, quiet=True)
    monkeypatch.setitem(sys.modules, "av", None)          # PyAV not installed
    with pytest.raises(ExportError, match=r'pip install "fastfig\[export\]"'):
        fastfig.export(str(two), tmp_path / "t2.mp4", quiet=True)
    assert not os.path.exists(tmp_path / "t2.mp4")


def test_a_failing_frame_leaves_no_file(tmp_path):
    script = write_script(tmp_path / "a.py", frames=6, update_extra=(
        "if i == 3:\n    raise RuntimeError('frame 3 fails')"))
    out = tmp_path / "a.mp4"
    with pytest.raises(RuntimeError, match="frame 3 fails"):
        fastfig.export(str(script), out, workers=1, quiet=True)
    assert os.listdir(tmp_path) == ["a.py"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="max_tasks_per_child: Python 3.11")
def test_a_script_that_draws_differently_each_run_is_reported(tmp_path, recwarn):
    # Unseeded noise in the static part of the figure: each run of the script differs.
    # One task per fresh process, so that every chunk runs the script anew.
    import concurrent.futures
    import multiprocessing

    def fresh_processes():
        return concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("forkserver"), max_tasks_per_child=1)

    noisy = write_script(tmp_path / "n.py", frames=30, extra=(
        "ax.scatter(np.random.random(20) * 12, np.random.random(20) * 2 - 1)"))
    with fresh_processes() as pool, \
            pytest.warns(RuntimeWarning, match="does not make the same figure"):
        fastfig.export(str(noisy), tmp_path / "n.mp4", workers=pool, quiet=True)
    steady = write_script(tmp_path / "s.py", frames=30, extra=(
        "rng = np.random.default_rng(1)\n"
        "ax.scatter(rng.random(20) * 12, rng.random(20) * 2 - 1)"))
    with fresh_processes() as pool:
        fastfig.export(str(steady), tmp_path / "s.mp4", workers=pool, quiet=True)
    assert not [w for w in recwarn if "same figure" in str(w.message)]


# -- colour conversion and the encoder thread ----------------------------------------------

def yuv420_reference(rgba, matrix):
    """yuv420p planes of rgba (padded to even sides by repeating the edge) in the
    kernel's fixed point, computed over whole numpy arrays."""
    h, w = rgba.shape[:2]
    img = np.pad(rgba, ((0, h & 1), (0, w & 1), (0, 0)), mode="edge")[..., :3].astype(np.int64)
    m = np.asarray(matrix, np.int64).reshape(3, 3)
    y = (img @ m[0] + (16 << 16) + (1 << 15)) >> 16
    s = img[0::2, 0::2] + img[0::2, 1::2] + img[1::2, 0::2] + img[1::2, 1::2]
    u = (s @ m[1] + (128 << 16) + (1 << 15)) >> 16
    v = (s @ m[2] + (128 << 16) + (1 << 15)) >> 16
    return [p.astype(np.uint8) for p in (y, u, v)]


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (7, 5), (33, 17), (64, 1), (1, 9),
                                  (641, 361)])
def test_colour_kernel_equals_the_numpy_reference(size):
    from fastfig._encode import rgba_to_yuv420
    from fastfig.export.colour import MATRIX
    w, h = size
    rng = np.random.default_rng(w * 1000 + h)
    rgba = rng.integers(0, 256, (h, w, 4), np.uint8)
    ref = yuv420_reference(rgba, MATRIX)
    pw, ph = w + (w & 1), h + (h & 1)
    # Planes wider than the picture (a line size with padding) and filled with a marker:
    # the kernel writes the blocks its rectangles touch and nothing else.
    planes = [np.full((ph, pw + 13), 7, np.uint8), np.full((ph // 2, pw // 2 + 5), 7, np.uint8),
              np.full((ph // 2, pw // 2 + 5), 7, np.uint8)]
    rects = np.array([[rng.integers(0, w), rng.integers(0, h), 1, 1],
                      [w // 3, h // 4, max(1, w // 2), max(1, h // 3)]], np.int32)
    rects[0, 2] = rng.integers(1, w - rects[0, 0] + 1)
    rects[0, 3] = rng.integers(1, h - rects[0, 1] + 1)
    rgba_to_yuv420(rgba, *planes, rects, 2, MATRIX)
    touched = np.zeros((ph // 2, pw // 2), bool)
    for x, y, rw, rh in rects.tolist():
        touched[y // 2:(y + rh + 1) // 2, x // 2:(x + rw + 1) // 2] = True
    for plane, expected, scale in zip(planes, ref, (2, 1, 1)):
        mask = np.repeat(np.repeat(touched, scale, 0), scale, 1)
        got = plane[:, :expected.shape[1]]
        assert np.array_equal(got[mask], expected[mask])
        assert (got[~mask] == 7).all() and (plane[:, expected.shape[1]:] == 7).all()
    # The whole picture in one rectangle.
    rgba_to_yuv420(rgba, *planes, np.array([[0, 0, w, h]], np.int32), 1, MATRIX)
    for plane, expected in zip(planes, ref):
        assert np.array_equal(plane[:, :expected.shape[1]], expected)


def test_colour_kernel_rejects_what_it_cannot_hold():
    from fastfig._encode import rgba_to_yuv420
    from fastfig.export.colour import MATRIX
    rgba = np.zeros((5, 7, 4), np.uint8)
    y, u, v = np.zeros((6, 8), np.uint8), np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8)
    whole = np.array([[0, 0, 7, 5]], np.int32)
    with pytest.raises(ValueError, match="outside"):
        rgba_to_yuv420(rgba, y, u, v, np.array([[3, 0, 5, 1]], np.int32), 1, MATRIX)
    with pytest.raises(ValueError, match="too small"):
        rgba_to_yuv420(rgba, y[:5], u, v, whole, 1, MATRIX)
    with pytest.raises(ValueError, match="9 coefficients"):
        rgba_to_yuv420(rgba, y, u, v, whole, 1, MATRIX[:8].copy())
    with pytest.raises(ValueError, match="exceeds"):
        rgba_to_yuv420(rgba, y, u, v, whole, 2, MATRIX)


def test_the_matrix_is_bt709_limited_range():
    from fastfig.export.colour import MATRIX
    def one(rgb):
        y, u, v = yuv420_reference(np.array([[[*rgb, 255]]], np.uint8), MATRIX)
        return int(y[0, 0]), int(u[0, 0]), int(v[0, 0])
    assert one((0, 0, 0)) == (16, 128, 128)
    assert one((255, 255, 255)) == (235, 128, 128)
    # BT.709: Y' = 0.2126 R' + 0.7152 G' + 0.0722 B' (BT.601 would give red Y 81).
    assert one((255, 0, 0)) == (63, 102, 240)
    assert one((0, 0, 255)) == (32, 240, 118)


@pytest.mark.parametrize("depth", [1, 4])
def test_converting_changes_only_equals_converting_whole_frames(depth):
    # Frames with changes of every kind: a moving box, a frame with no change, a frame
    # changed nearly everywhere, odd sides. Each picture handed out equals the whole
    # conversion of its frame, however many frames ago its ring slot was last written.
    from fastfig._encode import rgba_to_yuv420
    from fastfig.export.colour import MATRIX, YUV420Converter
    h, w = 61, 87
    rng = np.random.default_rng(depth)
    img = rng.integers(0, 256, (h, w, 4), np.uint8)
    conv = YUV420Converter(w, h, depth=depth)
    for i in range(12):
        if i == 5:
            pass                                              # unchanged
        elif i == 8:
            img = rng.integers(0, 256, (h, w, 4), np.uint8)   # changed everywhere
        else:
            x, y = rng.integers(0, w - 9), rng.integers(0, h - 7)
            img[y:y + 7, x:x + 9] = rng.integers(0, 256, 4, np.uint8)
        got = conv.convert(img).to_ndarray()
        y_, u, v = (np.zeros((h + 1, w + 1), np.uint8), np.zeros(((h + 1) // 2, (w + 1) // 2),
                    np.uint8), np.zeros(((h + 1) // 2, (w + 1) // 2), np.uint8))
        rgba_to_yuv420(img, y_, u, v, np.array([[0, 0, w, h]], np.int32), 1, MATRIX)
        assert np.array_equal(got, np.concatenate([y_.ravel(), u.ravel(), v.ravel()])
                              .reshape(got.shape)), i
    assert conv.stats["partial"] > 0 and conv.stats["unchanged"] == (1 if depth == 1 else 0)


def test_an_encoder_failure_stops_the_export(tmp_path, monkeypatch):
    import threading
    from fastfig.export.encode import SegmentEncoder
    mux = SegmentEncoder._mux

    def failing_mux(self, packets):
        packets = list(packets)
        if packets and self.frames > 10:
            raise RuntimeError("the disk is full")
        mux(self, packets)

    monkeypatch.setattr(SegmentEncoder, "_mux", failing_mux)
    script = write_script(tmp_path / "a.py", frames=80)
    with pytest.raises(RuntimeError, match="the disk is full"):
        fastfig.export(str(script), tmp_path / "a.mp4", workers=1, quiet=True)
    assert os.listdir(tmp_path) == ["a.py"]
    assert not [t for t in threading.enumerate() if t.name == "fastfig-export-encoder"]


def test_a_failing_frame_stops_the_encoder_thread(tmp_path):
    import threading
    script = write_script(tmp_path / "a.py", frames=40, update_extra=(
        "if i == 30:\n    raise RuntimeError('frame 30 fails')"))
    with pytest.raises(RuntimeError, match="frame 30 fails"):
        fastfig.export(str(script), tmp_path / "a.mp4", workers=1, quiet=True)
    assert not [t for t in threading.enumerate() if t.name == "fastfig-export-encoder"]


def test_one_process_by_default_on_few_cores(monkeypatch):
    from fastfig.export import run
    from fastfig.export.script import Source
    source = Source("/x.py", "", ())
    for cpus, expected in ((1, 1), (2, 1), (4, 1), (8, 2), (64, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda: cpus)
        executor, n, owned = run._executor(None, source)
        assert n == expected
        if owned:
            executor.shutdown()


def test_export_after_matplotlib_use_agg_in_a_fresh_process(tmp_path):
    # pyplot not imported yet and its backend chosen by matplotlib.use: the script's
    # first figure resolves the backend while switching is ignored.
    script = write_script(tmp_path / "a.py", frames=3)
    code = ("import matplotlib; matplotlib.use('agg')\n"
            "import fastfig\n"
            f"fastfig.export({str(script)!r}, {str(tmp_path / 'a.mp4')!r}, workers=1, "
            "quiet=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(decode(tmp_path / "a.mp4")[0]) == 3
