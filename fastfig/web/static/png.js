// An exact reader of the PNG payloads of frame packets (PROTOCOL.md 1.3), for FrameImage:
// the browser's own decoders (ImageDecoder, createImageBitmap) premultiply alpha on the
// way, so a pixel with alpha 0 loses its colour and a half-transparent one is rounded.
// This one checks what fastfig/codec/png.py checks (chunk order, CRCs, the header, the
// exact inflated size, the row filters), inflates with the browser's DecompressionStream
// and undoes the row filters itself. It returns { pixels } (w*h*4 RGBA bytes) or
// { reason } and throws nothing for bad input.

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(bytes, start, end) {
  let c = 0xFFFFFFFF;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}

/**
 * The chunks' IDAT data, checked; or a string saying what is wrong. checkCrc: false
 * skips the CRCs, the only part that costs time in proportion to the payload.
 */
function imageData(bytes, w, h, checkCrc = true) {
  for (let k = 0; k < 8; k++) if (bytes[k] !== SIGNATURE[k]) return "not a PNG file";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat = [];
  let pos = 8, seenHeader = false;
  for (;;) {
    if (pos + 12 > bytes.length) return "PNG ends before its IEND chunk";
    const length = view.getUint32(pos);
    if (length > bytes.length - pos - 12) return "PNG chunk runs past the payload";
    const kind = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
    const critical = (bytes[pos + 4] & 0x20) === 0;
    const body = pos + 8, end = body + length;
    if (checkCrc && view.getUint32(end) !== crc32(bytes, pos + 4, end)) return `PNG chunk ${kind} fails its CRC`;
    pos = end + 4;
    if (!seenHeader) {
      if (kind !== "IHDR" || length !== 13) return "PNG does not start with IHDR";
      if (view.getUint32(body) !== w || view.getUint32(body + 4) !== h) {
        return "PNG of another size than its rectangle";
      }
      const fields = [8, 6, 0, 0, 0];
      for (let k = 0; k < 5; k++) {
        if (bytes[body + 8 + k] !== fields[k]) return "PNG is not 8-bit non-interlaced RGBA";
      }
      seenHeader = true;
    } else if (kind === "IDAT") {
      idat.push(bytes.subarray(body, end));
    } else if (kind === "IEND") {
      break;
    } else if (critical) {
      return `PNG has an unknown critical chunk ${kind}`;
    }
  }
  if (pos !== bytes.length) return "bytes after the PNG's IEND chunk";
  return idat;
}

/** The zlib stream's contents if they are exactly `size` bytes, else null. */
async function inflate(parts, size) {
  const stream = new DecompressionStream("deflate");
  const writer = stream.writable.getWriter();
  // Errors surface on the reading side; these promises must not reject unhandled.
  for (const part of parts) writer.write(part).catch(() => {});
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  const out = new Uint8Array(size);
  let n = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (value.length > size - n) {
        reader.cancel().catch(() => {});
        return null;
      }
      out.set(value, n);
      n += value.length;
    }
  } catch (e) {
    return null;   // corrupt or truncated stream, or bytes after its end
  }
  return n === size ? out : null;
}

function paeth(a, b, c) {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undo the row filters of w x h RGBA scanlines into pixels; false on an unknown filter. */
function unfilter(lines, w, h, pixels) {
  const stride = 4 * w;
  for (let y = 0; y < h; y++) {
    const filter = lines[y * (stride + 1)];
    if (filter > 4) return false;
    const src = y * (stride + 1) + 1, row = y * stride, up = row - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= 4 ? pixels[row + i - 4] : 0;
      const b = y > 0 ? pixels[up + i] : 0;
      const c = i >= 4 && y > 0 ? pixels[up + i - 4] : 0;
      const x = lines[src + i];
      switch (filter) {
        case 0: pixels[row + i] = x; break;
        case 1: pixels[row + i] = x + a; break;
        case 2: pixels[row + i] = x + b; break;
        case 3: pixels[row + i] = x + ((a + b) >> 1); break;
        default: pixels[row + i] = x + paeth(a, b, c);
      }
    }
  }
  return true;
}

/**
 * Check a PNG payload's structure without inflating it (signature, IHDR first with the
 * rectangle's size and 8-bit RGBA, chunks in bounds, nothing after IEND) but not its CRCs:
 * what the viewer checks before handing a PNG to the browser's decoder. Returns the
 * reason it is wrong, or null.
 */
export function checkPng(bytes, w, h) {
  const idat = imageData(bytes, w, h, false);
  return typeof idat === "string" ? idat : null;
}

/** Read a PNG payload that must be a w x h 8-bit RGBA image: { pixels } or { reason }. */
export async function readPng(bytes, w, h) {
  const idat = imageData(bytes, w, h);
  if (typeof idat === "string") return { reason: idat };
  const lines = await inflate(idat, h * (4 * w + 1));
  if (lines === null) return { reason: "PNG image data is corrupt or of the wrong size" };
  const pixels = new Uint8ClampedArray(4 * w * h);
  // Uint8ClampedArray would clamp the filters' sums: wrap them through a Uint8Array view.
  if (!unfilter(lines, w, h, new Uint8Array(pixels.buffer))) return { reason: "PNG has an unknown row filter" };
  return { pixels };
}
