// Live numbers for the stats panel: frames painted per second, latency from the server's
// encode to the paint, bytes per second, decode time here and encode time at the server.

export class Stats {
  constructor(window_ms = 2000) {
    this.window = window_ms;
    this.samples = [];   // {t, bytes, decodeMs, latencyMs}
    this.painted = 0;
    this.keyframes = 0;
    this.rejected = 0;
    this.server = null;
  }

  frame(bytes, decodeMs, latencyMs, keyframe) {
    const t = performance.now();
    this.painted++;
    if (keyframe) this.keyframes++;
    this.samples.push({ t, bytes, decodeMs, latencyMs });
    const cutoff = t - this.window;
    let drop = 0;
    while (drop < this.samples.length && this.samples[drop].t < cutoff) drop++;
    if (drop) this.samples.splice(0, drop);
  }

  report() {
    const now = performance.now();
    const s = this.samples.filter((x) => x.t >= now - this.window);
    const span = this.window / 1000;
    const median = (values) => {
      if (!values.length) return null;
      const v = [...values].sort((a, b) => a - b);
      return v[Math.floor(v.length / 2)];
    };
    return {
      fps: s.length / span,
      bytesPerSecond: s.reduce((a, x) => a + x.bytes, 0) / span,
      decodeMs: median(s.map((x) => x.decodeMs)),
      latencyMs: median(s.map((x) => x.latencyMs).filter((x) => x !== null)),
      encodeMs: this.server && this.server.encode_ms != null ? this.server.encode_ms : null,
      painted: this.painted,
      keyframes: this.keyframes,
      rejected: this.rejected,
    };
  }

  text() {
    const r = this.report();
    const f = (v, d = 1) => (v === null || v === undefined ? "–" : v.toFixed(d));
    return `${f(r.fps)} fps · latency ${f(r.latencyMs)} ms · ${f(r.bytesPerSecond / 1024, 0)} KB/s · ` +
      `decode ${f(r.decodeMs, 2)} ms · encode ${f(r.encodeMs, 2)} ms · ${r.painted} frames, ` +
      `${r.keyframes} keyframes`;
  }
}
