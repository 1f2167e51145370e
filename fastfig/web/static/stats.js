// Live numbers for the stats panel, over a sliding window: frames painted, received and
// dropped per second apart (a display shows at most one frame per refresh, so received can
// exceed painted), latency from the server's encode to the paint, bytes per second, decode
// time here and encode time at the server.

export class Stats {
  constructor(window_ms = 2000) {
    this.window = window_ms;
    this.events = {
      received: [],   // {t, bytes, waitMs}
      applied: [],    // {t, decodeMs}
      painted: [],    // {t, latencyMs, dropped}
    };
    this.counts = { received: 0, painted: 0, dropped: 0, keyframes: 0 };
    this.rejected = 0;
    this.server = null;
    this.creditAt = null;   // when credit last went back, until the next packet
  }

  _push(kind, sample) {
    const list = this.events[kind];
    sample.t = performance.now();
    list.push(sample);
    const cutoff = sample.t - this.window;
    let old = 0;
    while (old < list.length && list[old].t < cutoff) old++;
    if (old) list.splice(0, old);
  }

  /** Credit went back: the next packet's arrival measures the round trip (the credit to
   * the bridge and on to the server, a render if the server had nothing newer, the
   * packet back), which bounds the frame rate when it exceeds a display frame. */
  credited() {
    this.creditAt = performance.now();
  }

  /** A packet arrived (bytes long). */
  received(bytes) {
    this.counts.received++;
    const waitMs = this.creditAt === null ? null : performance.now() - this.creditAt;
    this.creditAt = null;
    this._push("received", { bytes, waitMs });
  }

  /** A frame was applied to the image held, decodeMs after it arrived. */
  applied(decodeMs, keyframe) {
    if (keyframe) this.counts.keyframes++;
    this._push("applied", { decodeMs });
  }

  /** The canvas was painted, showing a frame latencyMs after the server encoded it;
   * dropped frames were applied since the previous paint and never shown. */
  painted(latencyMs, dropped) {
    this.counts.painted++;
    this.counts.dropped += dropped;
    this._push("painted", { latencyMs, dropped });
  }

  report() {
    const now = performance.now();
    const recent = (kind) => this.events[kind].filter((x) => x.t >= now - this.window);
    const span = this.window / 1000;
    const median = (values) => {
      if (!values.length) return null;
      const v = [...values].sort((a, b) => a - b);
      return v[Math.floor(v.length / 2)];
    };
    const received = recent("received"), applied = recent("applied"), painted = recent("painted");
    return {
      paintedFps: painted.length / span,
      receivedFps: received.length / span,
      droppedFps: painted.reduce((a, x) => a + x.dropped, 0) / span,
      bytesPerSecond: received.reduce((a, x) => a + x.bytes, 0) / span,
      decodeMs: median(applied.map((x) => x.decodeMs)),
      latencyMs: median(painted.map((x) => x.latencyMs).filter((x) => x !== null)),
      roundTripMs: median(received.map((x) => x.waitMs).filter((x) => x !== null)),
      encodeMs: this.server && this.server.encode_ms != null ? this.server.encode_ms : null,
      painted: this.counts.painted,
      received: this.counts.received,
      dropped: this.counts.dropped,
      keyframes: this.counts.keyframes,
      rejected: this.rejected,
    };
  }

  text() {
    const r = this.report();
    const f = (v, d = 1) => (v === null || v === undefined ? "–" : v.toFixed(d));
    return `painted ${f(r.paintedFps)}/s · received ${f(r.receivedFps)}/s · dropped ` +
      `${f(r.droppedFps)}/s · latency ${f(r.latencyMs)} ms · round trip ${f(r.roundTripMs)} ms · ` +
      `${f(r.bytesPerSecond / 1024, 0)} KB/s · decode ${f(r.decodeMs, 2)} ms · encode ` +
      `${f(r.encodeMs, 2)} ms · ${r.painted} painted, ${r.received} received, ` +
      `${r.dropped} dropped, ${r.keyframes} keyframes`;
  }
}
