"""The viewer's packet decoder, fastfig/web/static/packet.js, checked by our own suite:
its constants equal fastfig/codec/packet.py's; in headless Chromium it decodes every
golden fixture to the committed image exactly; and 10,000 mutated, truncated and random
packets each either apply or are rejected with FrameError, with no other error, and a
rejected one leaves the image (in memory and on a canvas) exactly as it was. Where the
Python decoder applies the same packet to the same image, both give the same pixels.

The page is served by playwright's request routing from a made-up loopback origin (a
secure context, so WebCodecs' ImageDecoder is there), with no server and no socket.
"""

import base64
import json
import pathlib
import re
import struct
import zlib

import numpy as np
import pytest

from browser_helpers import checked_page, missing
from fastfig import Encoding, FrameDecoder, FrameError
from fastfig.codec import packet as P

STATIC = pathlib.Path(__file__).parents[1] / "fastfig" / "web" / "static"
FIXTURES = pathlib.Path(__file__).with_name("fixtures")
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
NAMES = [p["name"] for p in MANIFEST["packets"]]
BASES = {p["name"]: p["base"] for p in MANIFEST["packets"] if "base" in p}
ORIGIN = "http://127.0.0.1:47913"      # routed by playwright; nothing listens there
MUTANTS = 10_000
LANES = 4


# -- constants ---------------------------------------------------------------------------------

def js_constants():
    """name -> value of every `export const` in packet.js whose value is a literal."""
    source = (STATIC / "packet.js").read_text()
    found = {}
    for statement in re.findall(r"^export const (.+?);", source, re.M | re.S):
        for name, value in re.findall(r"(\w+)\s*=\s*(\"[^\"]*\"|\[[^\]]*\]|-?\d+)", statement):
            found[name] = json.loads(value)
    return found


def python_constants():
    return {"MAGIC": P.MAGIC.decode(), "VERSION_MAJOR": P.VERSION_MAJOR,
            "VERSION_MINOR": P.VERSION_MINOR, "HEADER_SIZE": P.HEADER_SIZE,
            "HEADER_SIZE_BASE": P.HEADER_SIZE_BASE, "RECT_SIZE": P.RECT_SIZE,
            "MAX_SIDE": P.MAX_SIDE, "FLAG_KEYFRAME": P.FLAG_KEYFRAME,
            "FLAG_BASE": P.FLAG_BASE, **{e.name: int(e) for e in Encoding},
            "ENCODING_NAMES": [e.name.lower() for e in sorted(Encoding)]}


def test_packet_js_constants_equal_the_python_ones():
    js = js_constants()
    for name, value in python_constants().items():
        assert js.get(name) == value, name


# -- the page ----------------------------------------------------------------------------------

REASON = missing()
browser_only = pytest.mark.skipif(REASON is not None, reason=f"browser tests: {REASON}")

PAGE = """<!doctype html><canvas id="c"></canvas><script type="module">
import * as packet from "./packet.js";
window.packet = packet;
window.ready = true;
</script>"""

#: Helpers in the page: bytes <-> base64, a CRC-32 (zlib's) to compare images with Python,
#: and one function that parses, decodes and applies a packet to a holder.
HELPERS = r"""
const P = window.packet;
const toBuffer = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
const table = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
const crc32 = (bytes) => {
  let c = 0xFFFFFFFF;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
};
const toBase64 = (bytes) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
};
// A FrameImage takes exact PNG decodes; a FrameCanvas the browser's, as in the viewer.
const applyTo = async (holders, buffer) => {
  const frame = P.parsePacket(buffer);
  for (const h of holders) {
    h.check(frame);
    h.apply(frame, await P.decodeFrame(frame, { exactPng: h instanceof P.FrameImage }));
  }
  return frame;
};
const outcome = async (holder, buffer) => {
  try {
    await applyTo([holder], buffer);
    return "applied";
  } catch (e) {
    return e instanceof P.FrameGap ? "FrameGap" : e instanceof P.FrameError ? "FrameError"
      : `uncaught ${e && e.name}: ${e && e.message}`;
  }
};
"""


def open_page(browser, init_script=None):
    for page in checked_page(browser, 400, 300):
        if init_script:
            page.add_init_script(init_script)

        def serve(route):
            path = route.request.url[len(ORIGIN):].split("?")[0]
            if path in ("/", "/index.html"):
                route.fulfill(body=PAGE, content_type="text/html")
            elif path in ("/packet.js", "/png.js"):
                route.fulfill(body=(STATIC / path[1:]).read_text(),
                              content_type="text/javascript")
            else:
                route.fulfill(status=404, body="")

        page.route(f"{ORIGIN}/**", serve)
        page.goto(f"{ORIGIN}/")
        page.wait_for_function("window.ready === true")
        yield page


@pytest.fixture(scope="module")
def page(browser):
    yield from open_page(browser)


@pytest.fixture(scope="module")
def fallback_page(browser):
    """The viewer where WebCodecs is missing (or the page is not a secure context, as
    on http://<LAN address>): PNGs go through createImageBitmap."""
    yield from open_page(browser, "delete window.ImageDecoder;")


def b64(data):
    return base64.b64encode(data).decode()


@browser_only
def test_the_page_uses_imagedecoder_and_the_python_constants(page):
    got = page.evaluate("""(names) => Object.fromEntries(
        names.map((n) => [n, window.packet[n]]).concat([["decoder", window.packet.PNG_DECODER]]))""",
                        list(python_constants()))
    assert got.pop("decoder") == "ImageDecoder"
    assert got == python_constants()


@browser_only
def test_every_golden_fixture_decodes_to_its_image_exactly(page):
    packets = {name: b64((FIXTURES / f"{name}.bin").read_bytes()) for name in NAMES}
    got = page.evaluate(HELPERS + """
    async ([names, packets, bases]) => {
      const out = {};
      const image = new P.FrameImage();
      for (const name of names) {
        if (name in bases) {
          // a catch-up delta: a gap here, then applied to the image of its base
          let gap = false;
          try { await applyTo([image], toBuffer(packets[name])); }
          catch (e) { gap = e instanceof P.FrameGap; }
          const own = new P.FrameImage();
          await applyTo([own], toBuffer(packets[bases[name]]));
          const frame = await applyTo([own], toBuffer(packets[name]));
          out[name] = { gap, baseSeq: frame.baseSeq, seq: own.seq,
                        rgba: toBase64(new Uint8Array(own.image.data.buffer)) };
          continue;
        }
        const frame = await applyTo([image], toBuffer(packets[name]));
        out[name] = { seq: image.seq, epoch: image.epoch, keyframe: frame.keyframe,
                      rgba: toBase64(new Uint8Array(image.image.data.buffer)) };
      }
      return out;
    }""", [NAMES, packets, BASES])
    for name in NAMES:
        expected = np.load(FIXTURES / f"{name}.npy")
        frame = P.parse((FIXTURES / f"{name}.bin").read_bytes())
        rgba = base64.b64decode(got[name]["rgba"])
        assert rgba == expected.tobytes(), name
        assert got[name]["seq"] == frame.seq, name
        if name in BASES:
            assert got[name]["gap"] and got[name]["baseSeq"] == frame.base_seq


# -- fuzzing -----------------------------------------------------------------------------------

def keyframe_of(image, epoch, seq):
    h, w = image.shape[:2]
    return P.pack(P.Frame(seq, epoch, True, w, h,
                          (P.Rect(0, 0, w, h, Encoding.RAW, image.tobytes()),)))


def corpus():
    """(packet, the keyframe packet of the image it applies to) for every fixture."""
    frames = {n: P.parse((FIXTURES / f"{n}.bin").read_bytes()) for n in NAMES}
    pairs = []
    for i, name in enumerate(NAMES):
        before = BASES.get(name, NAMES[i - 1])   # the first one applies to the last image
        held = frames[before]
        pairs.append(((FIXTURES / f"{name}.bin").read_bytes(),
                      keyframe_of(np.load(FIXTURES / f"{before}.npy"), held.epoch, held.seq)))
    return pairs


def mutate(rng, packet, others):
    """One bad, odd or random variant of packet."""
    data = bytearray(packet)
    kind = rng.integers(9)
    if kind == 0:                                   # flip a few bits anywhere
        for _ in range(rng.integers(1, 9)):
            data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
    elif kind == 1:                                 # a byte set to an edge value
        data[rng.integers(len(data))] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
    elif kind == 2:                                 # truncated
        del data[rng.integers(len(data)):]
    elif kind == 3:                                 # trailing bytes
        data += rng.integers(0, 256, rng.integers(1, 9), dtype=np.uint8).tobytes()
    elif kind == 4:                                 # a header field set to an edge value
        header_size = struct.unpack_from("<H", data, 6)[0]
        offset = int(rng.choice([8, 12, 16, 20, 24, 28, 40] if header_size > 40
                                else [8, 12, 16, 20, 24, 28]))
        old = struct.unpack_from("<I", data, offset)[0]
        value = int(rng.choice([0, 1, 2, 3, 40, 44, old - 1, old + 1, 2**31, 2**32 - 1]))
        struct.pack_into("<I", data, offset, value & 0xFFFFFFFF)
        if rng.integers(3) == 0:                    # and the header size with it
            struct.pack_into("<H", data, 6, int(rng.choice([36, 40, 42, 44, 48, 0xFFFF])))
    elif kind == 5:                                 # damage past the header: table, payloads
        start = min(len(data) - 1, 40 + int(rng.integers(max(1, len(data) - 40))))
        for _ in range(rng.integers(1, 5)):
            data[start + rng.integers(len(data) - start)] = int(rng.integers(256))
    elif kind == 6:                                 # a rectangle entry's field
        header_size = struct.unpack_from("<H", data, 6)[0]
        nrects = struct.unpack_from("<I", data, 28)[0]
        if nrects:
            at = header_size + 24 * int(rng.integers(nrects)) + 4 * int(rng.choice([0, 1, 2, 3, 5]))
            old = struct.unpack_from("<I", data, at)[0]
            struct.pack_into("<I", data, at, int(rng.choice([0, old - 1, old + 1, 2**32 - 1]))
                             & 0xFFFFFFFF)
        else:
            data[4] = 2                             # another major version
    elif kind == 7:                                 # one packet's header on another's body
        other = others[rng.integers(len(others))]
        cut = int(rng.choice([40, 44, 64, 68]))
        data = bytearray(data[:cut] + other[cut:])
    else:                                           # random bytes behind a magic
        data = bytearray(b"FFIG" + bytes([1, int(rng.integers(3))]) + struct.pack("<H", 40)
                         + rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8).tobytes())
    return bytes(data)


def python_verdict(packet, prestate):
    """What the Python decoder does with packet on the image of prestate: (outcome,
    CRC-32 of the image after it, or the error's message)."""
    dec = FrameDecoder()
    dec.decode(prestate)
    try:
        out = dec.decode(packet)
    except FrameError as e:
        return type(e).__name__, str(e)
    return "applied", zlib.crc32(out.tobytes())


FUZZ = HELPERS + """
async ([cases, lanes]) => {
  // Lanes of consecutive cases, each with its own holders, run side by side so that one
  // lane's PNG decodes (off the main thread) overlap another's work.
  const lane = async (slice) => {
    const canvas = document.createElement("canvas");
    const image = new P.FrameImage();
    const onCanvas = new P.FrameCanvas(canvas);
    const results = [];
    let current = null, before, shown, held;
    for (const [packetB64, prestateB64] of slice) {
      // Both holders back on the packet's own base image, unless they still hold it.
      if (prestateB64 !== current) {
        await applyTo([image, onCanvas], toBuffer(prestateB64));
        before = image.image.data.slice();
        shown = onCanvas.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        held = [image.seq, image.epoch, image.width, image.height];
        current = prestateB64;
      }
      const [inMemory, onScreen] = await Promise.all(
        [outcome(image, toBuffer(packetB64)), outcome(onCanvas, toBuffer(packetB64))]);
      let intact = true;
      if (inMemory !== "applied") {
        intact = crc32(image.image.data) === crc32(before) && image.seq === held[0]
          && image.epoch === held[1] && image.width === held[2] && image.height === held[3];
      }
      if (onScreen !== "applied") {
        const now = onCanvas.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        intact = intact && now.length === shown.length && crc32(now) === crc32(shown)
          && onCanvas.seq === held[0] && onCanvas.epoch === held[1];
      }
      results.push([inMemory, inMemory === "applied" ? crc32(image.image.data) : null, intact,
                    onScreen]);
      if (inMemory === "applied" || onScreen === "applied") current = null;
    }
    return results;
  };
  const size = Math.ceil(cases.length / lanes);
  const slices = [];
  for (let k = 0; k < cases.length; k += size) slices.push(cases.slice(k, k + size));
  return (await Promise.all(slices.map(lane))).flat();
}"""


def fuzz(page, n, seed):
    """n mutated packets through the page: the cases (packet, prestate) and, for each,
    [outcome in memory, CRC-32 of the image if applied, intact, outcome on the canvas];
    asserts that none raised anything but FrameError and no rejection changed an image."""
    pairs = corpus()
    originals = [p for p, _ in pairs]
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        packet, prestate = pairs[i * len(pairs) // n]     # grouped by base image
        cases.append((mutate(rng, packet, originals), prestate))
    results = []
    for start in range(0, n, 2500):                     # a few batches keep messages small
        batch = cases[start:start + 2500]
        results += page.evaluate(FUZZ, [[[b64(p), b64(k)] for p, k in batch], LANES])
    uncaught = [(i, o) for i, r in enumerate(results) for o in (r[0], r[3])
                if o.startswith("uncaught")]
    assert not uncaught, uncaught[:10]
    damaged = [i for i, r in enumerate(results) if not r[2]]
    assert not damaged, damaged[:10]
    return cases, results


@browser_only
def test_mutated_packets_apply_or_are_rejected_cleanly(page):
    cases, results = fuzz(page, MUTANTS, 20261202)
    outcomes = [r[0] for r in results]
    # Enough of each kind that the fuzzing reached the decoders, not just the header.
    counts = {o: outcomes.count(o) for o in set(outcomes)}
    assert counts.get("applied", 0) > 500 and counts.get("FrameError", 0) > 2000, counts
    assert counts.get("FrameGap", 0) > 100, counts
    # The JavaScript decoder with exact PNGs applies what the Python decoder applies and
    # nothing else, with the same pixels. (Which of FrameGap and FrameError a packet that
    # is both a gap and malformed gets depends on the order of the checks.) The viewer's
    # path through the browser's PNG decoder skips the CRCs: it may apply a PNG whose
    # chunk CRCs fail, never one whose image data is wrong.
    disagree = []
    for (packet, prestate), (outcome, crc, _, on_screen) in zip(cases, results):
        verdict, expected = python_verdict(packet, prestate)
        if (outcome == "applied") != (verdict == "applied") or (
                outcome == "applied" and crc != expected):
            disagree.append((outcome, verdict, packet[:48].hex()))
        if on_screen == "applied" and outcome != "applied":
            assert "CRC" in expected, expected
    assert not disagree, disagree[:5]


@browser_only
def test_mutated_packets_through_create_image_bitmap(fallback_page):
    assert fallback_page.evaluate("window.packet.PNG_DECODER") == "createImageBitmap"
    _, results = fuzz(fallback_page, 1_500, 20261203)
    on_screen = [r[3] for r in results]
    assert on_screen.count("applied") > 100 and on_screen.count("FrameError") > 500
