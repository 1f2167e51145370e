// The viewer's image, kept current off screen and painted once per display frame
// (PROTOCOL.md 3.6).
//
// Every packet that arrives is decoded and applied at once to the image held off screen (RGBA
// bytes, packet.js's FrameImage), so the image held is always the newest one. The visible
// canvas is written only in a requestAnimationFrame callback, at most once per display
// frame, and only where the image changed since the last paint (the union of the frames'
// rectangles): a line moving on a 1920x1080 figure costs a few small copies per refresh,
// not a full-frame one. Frames applied between two refreshes are "dropped": nobody could
// have seen them, and they cost only their decode.
//
// The paint is putImageData with a dirty rectangle, not drawImage from an off-screen
// canvas: measured in headless Chromium (software compositing), drawImage of a 300x150
// region from another canvas onto a 1920x1080 one cost the compositor 2.9 ms a frame,
// putImageData of the same region 0.7 ms (the former re-sends the whole canvas).

import { FrameImage } from "./packet.js";

// Past this many rectangles waiting to be painted, paint their bounding box instead: one
// copy of a larger area costs less than very many tiny ones.
const MAX_DAMAGE_RECTS = 64;

export class DisplayCanvas {
  /**
   * canvas: the visible canvas. In each display frame with something new, onTake(taken)
   * is called first, with the frames applied since the previous paint (the newest of them
   * is the one shown: the viewer returns their credit before spending time on pixels),
   * then onPaint(now, taken) after the paint with the rAF timestamp; onLayout() after the
   * visible canvas changed size.
   */
  constructor(canvas, { onTake = () => {}, onPaint = () => {}, onLayout = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: true });
    this.onTake = onTake;
    this.onPaint = onPaint;
    this.onLayout = onLayout;
    // The image held: checked and written as packet.js says, in bytes no one sees.
    this.image = new FrameImage();
    this.damage = [];          // rectangles changed since the last paint
    this.full = false;         // ... or everything (a keyframe, a new size)
    this.taken = [];           // frames applied since the last paint, oldest first
    this.scheduled = false;
    this.frames = 0;           // display frames seen (rAF callbacks run)
    this.painted = 0;          // paints: display frames in which the canvas changed
    this.dropped = 0;          // frames applied but replaced before any paint
    this.paintedSeq = null;    // epoch and seq of the frame on screen
    this.paintedEpoch = null;
    this._tick = (now) => this._paint(now);
  }

  /** Apply a checked, decoded frame to the image held; it is shown at the next refresh. */
  apply(frame, ops) {
    this.image.apply(frame, ops);   // throws FrameGap (nothing written) if it does not follow
    if (frame.keyframe) {
      this.full = true;
      this.damage.length = 0;
    } else if (!this.full) {
      for (const r of frame.rects) this.damage.push(r);
      if (this.damage.length > MAX_DAMAGE_RECTS) this._mergeDamage();
    }
    this.taken.push(frame);
    this._schedule();
  }

  _mergeDamage() {
    let x0 = Infinity, y0 = Infinity, x1 = 0, y1 = 0;
    for (const r of this.damage) {
      x0 = Math.min(x0, r.x); y0 = Math.min(y0, r.y);
      x1 = Math.max(x1, r.x + r.w); y1 = Math.max(y1, r.y + r.h);
    }
    this.damage = [{ x: x0, y: y0, w: x1 - x0, h: y1 - y0 }];
  }

  _schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(this._tick);
  }

  _paint(now) {
    this.scheduled = false;
    this.frames++;
    const taken = this.taken;
    if (!taken.length) return;
    this.taken = [];
    this.onTake(taken);
    const src = this.image.image;   // ImageData of the newest frame
    const c = this.canvas;
    let resized = false;
    if (c.width !== src.width || c.height !== src.height) {
      c.width = src.width;
      c.height = src.height;
      this.ctx = c.getContext("2d", { alpha: true });
      this.full = true;
      resized = true;
    }
    const ctx = this.ctx;
    // putImageData replaces pixels, never blends (PROTOCOL.md 1.4).
    if (this.full) {
      ctx.putImageData(src, 0, 0);
    } else {
      for (const r of this.damage) ctx.putImageData(src, 0, 0, r.x, r.y, r.w, r.h);
    }
    this.full = false;
    this.damage.length = 0;
    this.painted++;
    this.dropped += taken.length - 1;
    const shown = taken[taken.length - 1];
    this.paintedSeq = shown.seq;
    this.paintedEpoch = shown.epoch;
    if (resized) this.onLayout();
    this.onPaint(now, taken);
    // One more callback at the next display frame, painting or not: `frames` then says
    // that a refresh went by since this paint (the viewer's credit policy reads it).
    this._schedule();
  }

  /** Frames applied and not painted yet. */
  get pending() {
    return this.taken.length;
  }
}

/**
 * Draw matplotlib's zoom rubberband on overlay, a canvas laid over the figure's canvas:
 * band is [x0, y0, x1, y1] in the figure's CSS pixels from its top left (null: none), and
 * the figure's image has `ratio` pixels per CSS pixel. The overlay follows the canvas's
 * size on screen at the display's own resolution, so the dashes stay one device pixel.
 */
export function drawRubberband(overlay, canvas, band, ratio) {
  const r = canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
  if (overlay.width !== w || overlay.height !== h) {
    overlay.width = w;
    overlay.height = h;
  }
  overlay.style.width = `${r.width}px`;
  overlay.style.height = `${r.height}px`;
  const ctx = overlay.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!band || !canvas.width || !r.width) return;
  const s = w / (canvas.width / ratio);
  const [x0, y0, x1, y1] = band;
  const x = Math.min(x0, x1), y = Math.min(y0, y1);
  ctx.setTransform(s, 0, 0, s, 0, 0);
  ctx.lineWidth = dpr / s;
  ctx.setLineDash([4 * dpr / s, 4 * dpr / s]);
  ctx.strokeStyle = "#000";
  ctx.strokeRect(x, y, Math.abs(x1 - x0), Math.abs(y1 - y0));
  ctx.lineDashOffset = 4 * dpr / s;
  ctx.strokeStyle = "#fff";
  ctx.strokeRect(x, y, Math.abs(x1 - x0), Math.abs(y1 - y0));
}
