"""The comparison table from a pytest-benchmark JSON file of bench/: medians and ratios
within one run, so that the load other processes put on the machine cancels out as far as
it can. Each benchmark describes itself in extra_info (codec, scenario, size, bytes)."""

import json

from .sequences import SCENARIOS, SIZES

#: Targets from the issue: (scenario, size, least speed-up over WebAgg, most bytes
#: relative to WebAgg).
DELTA_TARGETS = (("line1", "1920x1080", 20.0, 1.0), ("heavy", "1920x1080", 5.0, 1.25))
#: An unchanged frame's damage scan costs at most this many np.copyto of one frame.
DAMAGE_TARGET = 2.0


def load(path):
    """Benchmarks of a JSON file, keyed by (codec, scenario, size) or (codec, size)."""
    with open(path) as f:
        data = json.load(f)
    found = {}
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "codec" not in info:
            continue
        key = (info["codec"], info["scenario"], info["size"]) if "scenario" in info \
            else (info["codec"], info["size"])
        found[key] = {"median": b["stats"]["median"], "rounds": b["stats"]["rounds"], **info}
    return found, data.get("machine_info", {}), data["benchmarks"][0]["options"]["timer"] \
        if data["benchmarks"] else "?"


def _ms(b):
    return f"{b['median'] * 1e3:.2f}" if b else "-"


def _kb(b):
    return f"{b['bytes_per_frame'] / 1000:.1f}" if b else "-"


def _ratio(num, den):
    return f"{num / den:.2f}" if num is not None and den else "-"


def _table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    def cell(c, w):
        c = str(c)
        return c.rjust(w) if c.replace(".", "", 1).isdigit() or c == "-" else c.ljust(w)
    line = lambda cells: "| " + " | ".join(cell(c, w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(line, rows)])


def _cases(found):
    names = {k[1] for k in found if len(k) == 3}
    sizes = {k[2] for k in found if len(k) == 3}
    order = lambda xs, known: [x for x in known if x in xs] + sorted(xs - set(known))
    return [(n, s) for n in order(names, SCENARIOS) for s in order(sizes, SIZES)
            if any(k[1:] == (n, s) for k in found if len(k) == 3)]


def _encodings(b):
    if not b or not b.get("encodings"):
        return "-"
    per_frame = {e: n / b["rounds"] for e, n in b["encodings"].items()}
    return " ".join(f"{e} {n:.1f}" if n >= 0.05 else f"{e} {n:.2f}"
                    for e, n in sorted(per_frame.items(), key=lambda i: -i[1]))


def render(found, timer="?"):
    """The report as text."""
    get = lambda *key: found.get(key)
    med = lambda b: b["median"] if b else None
    byt = lambda b: b["bytes_per_frame"] if b else None
    out = [f"Medians per frame (timer: {timer}); speed-up = other / fastfig, "
           "bytes = fastfig / other.", ""]

    rows, details = [], []
    for name, size in _cases(found):
        ff, wa, pf = get("fastfig", name, size), get("webagg", name, size), \
            get("pillow_full", name, size)
        kf = get("fastfig_keyframe", name, size)
        rows.append([name, size, _ms(ff), _ms(wa), _ratio(med(wa), med(ff)), _ms(pf),
                     _ratio(med(pf), med(ff)), _kb(ff), _kb(wa), _kb(pf),
                     _ratio(byt(ff), byt(wa))])
        details.append([name, size, f"{ff['rects_per_frame']:.1f}" if ff else "-",
                        f"{100 * ff['damage_fraction']:.1f}" if ff else "-", _encodings(ff),
                        _ms(kf), _ratio(med(pf), med(kf)), _kb(kf), _ratio(byt(kf), byt(pf)),
                        _encodings(kf)])
    if rows:
        out += ["Delta frames: fastfig FrameEncoder.encode + packet vs WebAgg get_diff_image "
                "vs Pillow PNG of the full frame", ""]
        out.append(_table(["scenario", "size", "fastfig ms", "WebAgg ms", "speed-up",
                           "Pillow full ms", "speed-up", "fastfig kB", "WebAgg kB",
                           "Pillow full kB", "bytes vs WebAgg"], rows))
        out += ["", "fastfig deltas in detail, and fastfig keyframes vs Pillow PNG of the "
                "same full frame", ""]
        out.append(_table(["scenario", "size", "rects/frame", "damage % of frame",
                           "encodings per frame", "keyframe ms", "Pillow full / keyframe",
                           "keyframe kB", "bytes vs Pillow", "keyframe encoding"], details))

    damage = [k for k in found if len(k) == 2]
    for size in sorted({k[1] for k in damage}):
        copy = get("copyto", size)
        out += ["", f"Unchanged frame, {size}: cost relative to np.copyto of one frame", ""]
        out.append(_table(["what", "median ms", "vs np.copyto"], [
            [label, _ms(get(codec, size)), _ratio(med(get(codec, size)), med(copy))]
            for codec, label in (("damage", "damage scan (_encode.damage)"),
                                 ("encode_unchanged", "FrameEncoder.encode"),
                                 ("copyto", "np.copyto"))]))

    checks = []
    for name, size, speedup, bytes_ratio in DELTA_TARGETS:
        ff, wa = get("fastfig", name, size), get("webagg", name, size)
        if ff and wa:
            s, r = med(wa) / med(ff), byt(ff) / byt(wa)
            checks.append(f"{name} {size}: speed-up {s:.1f} (target >= {speedup:g}) "
                          f"{'met' if s >= speedup else 'MISSED'}; bytes {r:.2f} of WebAgg "
                          f"(target <= {bytes_ratio:g}) {'met' if r <= bytes_ratio else 'MISSED'}")
        else:
            checks.append(f"{name} {size}: not measured in this run")
    d, c = get("damage", "1920x1080"), get("copyto", "1920x1080")
    if d and c:
        r = med(d) / med(c)
        checks.append(f"unchanged 1920x1080 damage scan: {r:.2f} x np.copyto "
                      f"(target <= {DAMAGE_TARGET:g}) {'met' if r <= DAMAGE_TARGET else 'MISSED'}")
    else:
        checks.append("unchanged 1920x1080 damage scan: not measured in this run")
    out += ["", "Targets", ""] + [f"- {c}" for c in checks]
    return "\n".join(out)
