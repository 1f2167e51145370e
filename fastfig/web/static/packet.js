// The frame packet in the browser (PROTOCOL.md section 1): parse and check a packet, decode
// its rectangles, and apply frames to a canvas.
//
// A frame is applied all at once or not at all: every rectangle is checked and decoded
// (PNGs by the browser's own decoder, off the main thread, via createImageBitmap) before
// the first pixel is written, and then all of them are written in one synchronous step,
// so a rejected packet leaves the picture exactly as it was and no half-applied frame is
// ever shown. Pixels replace, never blend (PROTOCOL.md 1.4): RAW, RLE and FILL go through
// putImageData (or an opaque fillRect), a PNG rectangle is cleared before it is drawn.
//
// The constants are fastfig/codec/packet.py's, repeated; tests/test_packet_js.py holds
// them equal.

export const MAGIC = "FFIG";
export const VERSION_MAJOR = 1;
export const VERSION_MINOR = 1;
export const RAW = 0, FILL = 1, RLE = 2, PNG = 3;
export const ENCODING_NAMES = ["raw", "fill", "rle", "png"];
export const HEADER_SIZE = 40;
export const HEADER_SIZE_BASE = 44;
export const RECT_SIZE = 24;
export const MAX_SIDE = 32768;
export const FLAG_KEYFRAME = 1;
export const FLAG_BASE = 2;

// MAGIC as the little-endian word at offset 0
const MAGIC_WORD = MAGIC.charCodeAt(0) | (MAGIC.charCodeAt(1) << 8) | (MAGIC.charCodeAt(2) << 16)
  | (MAGIC.charCodeAt(3) << 24);

import { checkPng, readPng } from "./png.js";

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A packet the viewer must not apply (PROTOCOL.md 1.5). */
export class FrameError extends Error {}
/** A well-formed delta that does not follow the image held: a keyframe is needed. */
export class FrameGap extends FrameError {}

/**
 * Parse and check a frame packet (an ArrayBuffer). Returns the header fields and the
 * rectangle table; payloads stay in the buffer (offset, length).
 */
export function parsePacket(buffer) {
  if (!(buffer instanceof ArrayBuffer)) throw new FrameError("a packet is an ArrayBuffer");
  const size = buffer.byteLength;
  if (size < HEADER_SIZE) throw new FrameError("packet shorter than its header");
  const view = new DataView(buffer);
  if (view.getInt32(0, true) !== MAGIC_WORD) throw new FrameError("bad magic");
  const major = view.getUint8(4);
  if (major !== VERSION_MAJOR) throw new FrameError(`protocol version ${major} is not supported`);
  const headerSize = view.getUint16(6, true);
  if (headerSize < HEADER_SIZE || headerSize % 4 !== 0 || headerSize > size) {
    throw new FrameError(`bad header size ${headerSize}`);
  }
  const flags = view.getUint32(8, true);
  const frame = {
    keyframe: (flags & FLAG_KEYFRAME) !== 0,
    // a catch-up delta (version 1.1) applies to the image baseSeq, not seq - 1
    baseSeq: null,
    epoch: view.getUint32(12, true),
    seq: view.getUint32(16, true),
    width: view.getUint32(20, true),
    height: view.getUint32(24, true),
    // microseconds since the Unix epoch; exact as a double up to 2^53
    timestampUs: view.getUint32(32, true) + view.getUint32(36, true) * 4294967296,
    rects: [],
    buffer,
    byteLength: size,
  };
  const { width, height } = frame;
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
    throw new FrameError(`bad canvas size ${width}x${height}`);
  }
  if (flags & FLAG_BASE) {
    if (frame.keyframe) throw new FrameError("a keyframe with a base");
    if (headerSize < HEADER_SIZE_BASE) throw new FrameError(`a catch-up delta needs a ${HEADER_SIZE_BASE}-byte header`);
    frame.baseSeq = view.getUint32(HEADER_SIZE, true);
  }
  const nrects = view.getUint32(28, true);
  let offset = headerSize + nrects * RECT_SIZE;
  if (nrects > (size - headerSize) / RECT_SIZE || offset > size) {
    throw new FrameError("packet shorter than its rectangle table");
  }
  for (let i = 0; i < nrects; i++) {
    const at = headerSize + i * RECT_SIZE;
    const x = view.getUint32(at, true), y = view.getUint32(at + 4, true);
    const w = view.getUint32(at + 8, true), h = view.getUint32(at + 12, true);
    const encoding = view.getUint8(at + 16);
    const length = view.getUint32(at + 20, true);
    if (w < 1 || h < 1 || x + w > width || y + h > height) {
      throw new FrameError(`rectangle ${i} (${x},${y} ${w}x${h}) outside the canvas`);
    }
    if (encoding > PNG) throw new FrameError(`rectangle ${i}: unknown encoding ${encoding}`);
    const padded = length + ((4 - (length % 4)) % 4);
    if (offset + padded > size) throw new FrameError(`rectangle ${i}: payload runs past the end`);
    if (encoding === RAW && length !== w * h * 4) {
      throw new FrameError(`rectangle ${i}: RAW payload of ${length} bytes, not ${w * h * 4}`);
    }
    if (encoding === FILL && length !== 4) throw new FrameError(`rectangle ${i}: FILL payload is not 4 bytes`);
    if (encoding === RLE && (length % 4 !== 0 || length === 0)) {
      throw new FrameError(`rectangle ${i}: RLE payload is not a whole number of words`);
    }
    if (encoding === PNG) checkPngHeader(buffer, offset, length, w, h, i);
    frame.rects.push({ x, y, w, h, encoding, offset, length });
    offset += padded;
  }
  if (offset !== size) throw new FrameError("bytes follow the last payload");
  return frame;
}

function checkPngHeader(buffer, offset, length, w, h, i) {
  // The chunks, not the CRCs (the browser's decoder checks what it needs; an exact
  // decode, png.js's readPng, checks them all).
  const reason = checkPng(new Uint8Array(buffer, offset, length), w, h);
  if (reason !== null) throw new FrameError(`rectangle ${i}: ${reason}`);
}

/** Decode RLE words (PROTOCOL.md 1.3) into out (a Uint32Array of exactly w*h pixels). */
export function decodeRLE(words, out) {
  const n = words.length, total = out.length;
  let i = 0, o = 0;
  while (i < n) {
    const head = words[i++];
    if (head === 0 || head === 0x80000000) throw new FrameError("RLE count of zero");
    if (head < 0x80000000) {
      if (i >= n) throw new FrameError("RLE run without its pixel");
      if (o + head > total) throw new FrameError("RLE codes more pixels than its rectangle");
      const pixel = words[i++];
      if (head < 16) {
        for (let k = 0; k < head; k++) out[o + k] = pixel;
      } else {
        out.fill(pixel, o, o + head);
      }
      o += head;
    } else {
      const count = head - 0x80000000;
      if (i + count > n) throw new FrameError("RLE literal runs past its payload");
      if (o + count > total) throw new FrameError("RLE codes more pixels than its rectangle");
      if (count < 16) {
        for (let k = 0; k < count; k++) out[o + k] = words[i + k];
      } else {
        out.set(words.subarray(i, i + count), o);
      }
      i += count;
      o += count;
    }
  }
  if (o !== total) throw new FrameError(`RLE codes ${o} pixels, not ${total}`);
}

// WebCodecs' ImageDecoder (secure contexts, and http://127.0.0.1 is one) decodes straight
// to RGBA bytes at a fraction of createImageBitmap's cost per call, which dominates for
// the small rectangles of a delta (measured in headless Chromium: 3.7 ms instead of
// 10-15 ms for a frame of eight line-plot rectangles). createImageBitmap is the fallback.
const IMAGE_DECODER = typeof ImageDecoder === "function" && globalThis.isSecureContext !== false;
/** Which PNG decoder this page uses. */
export const PNG_DECODER = IMAGE_DECODER ? "ImageDecoder" : "createImageBitmap";

async function decodePngToImageData(bytes, w, h) {
  const decoder = new ImageDecoder({ data: bytes, type: "image/png", premultiplyAlpha: "none",
                                     colorSpaceConversion: "none" });
  let frame = null;
  try {
    frame = (await decoder.decode()).image;
    if (frame.displayWidth !== w || frame.displayHeight !== h) {
      throw new FrameError("PNG of another size than its rectangle");
    }
    const image = new ImageData(w, h);
    await frame.copyTo(image.data, { format: "RGBA", rect: { x: 0, y: 0, width: w, height: h } });
    return image;
  } catch (e) {
    if (e instanceof FrameError) throw e;
    throw new FrameError(`PNG does not decode: ${e.message || e}`);
  } finally {
    if (frame) frame.close();
    decoder.close();
  }
}

async function decodePng(bytes) {
  const blob = new Blob([bytes], { type: "image/png" });
  if (typeof createImageBitmap === "function") {
    try {
      // No colour management and no premultiplication on the way: the pixels are sRGB
      // already and must land in the canvas as sent.
      return await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
    } catch (e) {
      if (!(e instanceof TypeError)) throw new FrameError(`PNG does not decode: ${e.message || e}`);
      // an engine that does not know the options: try without them
      try {
        return await createImageBitmap(blob);
      } catch (e2) {
        throw new FrameError(`PNG does not decode: ${e2.message || e2}`);
      }
    }
  }
  // Fallback for engines without createImageBitmap: an <img> element.
  const url = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return img;
  } catch (e) {
    throw new FrameError(`PNG does not decode: ${e.message || e}`);
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function decodePngExact(bytes, w, h) {
  const { pixels, reason } = await readPng(bytes, w, h);
  if (reason) throw new FrameError(reason);
  return new ImageData(pixels, w, h);
}

/**
 * Decode every rectangle of a parsed frame into something a canvas can take: ImageData
 * (RAW, RLE, FILL with alpha), a colour (opaque FILL) or an ImageBitmap (PNG). Throws
 * FrameError (asynchronously) when any rectangle is bad; nothing is drawn here.
 * exactPng: decode PNGs with png.js into exact RGBA (for a FrameImage) rather than with
 * the browser's faster decoders, which premultiply alpha.
 */
export async function decodeFrame(frame, { exactPng = false } = {}) {
  if (!LITTLE_ENDIAN) throw new FrameError("this viewer needs a little-endian machine");
  const buffer = frame.buffer;
  const pending = [];
  const ops = frame.rects.map((r) => {
    const { x, y, w, h } = r;
    switch (r.encoding) {
      case RAW:
        return { x, y, w, h, image: new ImageData(new Uint8ClampedArray(buffer, r.offset, r.length), w, h) };
      case FILL: {
        const c = new Uint8Array(buffer, r.offset, 4);
        const pixel = new Uint32Array(buffer, r.offset, 1)[0];
        if (c[3] === 255) return { x, y, w, h, fill: `rgb(${c[0]},${c[1]},${c[2]})`, pixel };
        const image = new ImageData(w, h);
        new Uint32Array(image.data.buffer).fill(pixel);
        return { x, y, w, h, image };
      }
      case RLE: {
        const image = new ImageData(w, h);
        decodeRLE(new Uint32Array(buffer, r.offset, r.length / 4), new Uint32Array(image.data.buffer));
        return { x, y, w, h, image };
      }
      default: {
        if (exactPng) {
          const op = { x, y, w, h, image: null };
          pending.push(decodePngExact(new Uint8Array(buffer, r.offset, r.length), w, h)
            .then((image) => { op.image = image; }));
          return op;
        }
        if (IMAGE_DECODER) {
          const op = { x, y, w, h, image: null };
          pending.push(decodePngToImageData(new Uint8Array(buffer, r.offset, r.length), w, h)
            .then((image) => { op.image = image; }));
          return op;
        }
        const op = { x, y, w, h, bitmap: null };
        pending.push(decodePng(new Uint8Array(buffer, r.offset, r.length)).then((b) => {
          if (b.width !== w || b.height !== h) throw new FrameError("PNG of another size than its rectangle");
          op.bitmap = b;
        }));
        return op;
      }
    }
  });
  if (pending.length) {
    try {
      await Promise.all(pending);
    } catch (e) {
      for (const op of ops) if (op.bitmap && op.bitmap.close) op.bitmap.close();
      throw e;
    }
  }
  return ops;
}

/**
 * Throw FrameGap unless the frame applies to the image held, described by its epoch, seq
 * (null before any keyframe), width and height (PROTOCOL.md 1.4).
 */
export function checkFollows(held, frame) {
  if (frame.keyframe) return;
  if (held.seq === null) throw new FrameGap("a delta before any keyframe");
  if (frame.epoch !== held.epoch || frame.width !== held.width || frame.height !== held.height) {
    throw new FrameGap("a delta of another epoch or size");
  }
  if (frame.baseSeq !== null) {
    if (frame.baseSeq !== held.seq) {
      throw new FrameGap(`catch-up delta from frame ${frame.baseSeq} on frame ${held.seq}`);
    }
    return;
  }
  // An empty delta may also carry the current seq ("nothing changed").
  const next = (held.seq + 1) >>> 0;
  if (frame.seq !== next && !(frame.rects.length === 0 && frame.seq === held.seq)) {
    throw new FrameGap(`delta ${frame.seq} does not follow frame ${held.seq}`);
  }
}

/**
 * The image a viewer holds: a canvas, plus the epoch, sequence number and size of the
 * frame it shows, to decide whether a delta applies (PROTOCOL.md 1.4).
 */
export class FrameCanvas {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: true });
    this.epoch = null;
    this.seq = null;
    this.width = 0;
    this.height = 0;
  }

  /** Throw FrameGap unless the frame applies to the image held. */
  check(frame) {
    checkFollows(this, frame);
  }

  /** Write a checked, decoded frame: synchronous, so it shows all at once. */
  apply(frame, ops) {
    this.check(frame);
    const ctx = this.ctx;
    if (frame.keyframe) {
      if (this.canvas.width !== frame.width || this.canvas.height !== frame.height) {
        this.canvas.width = frame.width;    // also clears it
        this.canvas.height = frame.height;
        this.ctx = this.canvas.getContext("2d", { alpha: true });
      } else {
        ctx.clearRect(0, 0, frame.width, frame.height);
      }
      this.ctx.imageSmoothingEnabled = false;
    }
    const c = this.ctx;
    for (const op of ops) {
      if (op.image) {
        c.putImageData(op.image, op.x, op.y);
      } else if (op.fill) {
        c.fillStyle = op.fill;
        c.fillRect(op.x, op.y, op.w, op.h);
      } else {
        c.clearRect(op.x, op.y, op.w, op.h);
        c.drawImage(op.bitmap, op.x, op.y);
        if (op.bitmap.close) op.bitmap.close();
      }
    }
    this.epoch = frame.epoch;
    this.seq = frame.seq;
    this.width = frame.width;
    this.height = frame.height;
  }

  reset() {
    this.epoch = this.seq = null;
  }
}

/**
 * The image as RGBA bytes (an ImageData, not premultiplied), for code without a canvas
 * and for exact comparisons: a 2D canvas stores premultiplied alpha, so it cannot hold a
 * half-transparent pixel exactly. Exact for frames decoded with decodeFrame(frame,
 * { exactPng: true }); the browser's PNG decoders lose the colour of transparent pixels.
 */
export class FrameImage {
  constructor() {
    this.image = null;
    this.epoch = null;
    this.seq = null;
    this.width = 0;
    this.height = 0;
  }

  check(frame) {
    checkFollows(this, frame);
  }

  /** Write a checked, decoded frame (see FrameCanvas.apply). */
  apply(frame, ops) {
    this.check(frame);
    if (frame.keyframe) {
      if (this.width !== frame.width || this.height !== frame.height || this.image === null) {
        this.image = new ImageData(frame.width, frame.height);
      } else {
        this.image.data.fill(0);
      }
    }
    const stride = frame.width;
    const dst = new Uint32Array(this.image.data.buffer);
    for (const op of ops) {
      let src = op.image;
      if (op.bitmap) {
        const canvas = new OffscreenCanvas(op.w, op.h);
        const ctx = canvas.getContext("2d");
        ctx.drawImage(op.bitmap, 0, 0);
        if (op.bitmap.close) op.bitmap.close();
        src = ctx.getImageData(0, 0, op.w, op.h);
      }
      if (src) {
        // a RAW rectangle's data is a view into the packet (4-byte aligned)
        const words = new Uint32Array(src.data.buffer, src.data.byteOffset, op.w * op.h);
        for (let row = 0; row < op.h; row++) {
          dst.set(words.subarray(row * op.w, (row + 1) * op.w), (op.y + row) * stride + op.x);
        }
      } else {
        for (let row = 0; row < op.h; row++) {
          const at = (op.y + row) * stride + op.x;
          dst.fill(op.pixel, at, at + op.w);
        }
      }
    }
    this.epoch = frame.epoch;
    this.seq = frame.seq;
    this.width = frame.width;
    this.height = frame.height;
  }

  reset() {
    this.epoch = this.seq = null;
  }
}
