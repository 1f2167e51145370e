// One live figure in the page: its websocket, its canvas, its toolbar and its input.
// PROTOCOL.md section 3 describes what goes over the websocket; packet.js does the pixels.

import { parsePacket, decodeFrame, FrameGap } from "./packet.js";
import { DisplayCanvas, drawRubberband } from "./display.js";
import { el } from "./dom.js";
import { bindInput, TOOLS } from "./events.js";
import { Stats } from "./stats.js";
import { TimelineBar } from "./timeline.js";

const RETRY_MS = [250, 500, 1000, 2000, 3000];

export class FigureViewer {
  /**
   * figureId: the figure to show; token: the page's token; options.fit: the figure
   * follows the size of its container (the single-figure page); otherwise it keeps its
   * own size and a drag handle resizes it.
   */
  constructor(parent, figureId, token, options = {}) {
    this.id = figureId;
    this.token = token;
    this.fit = !!options.fit;
    this.state = {};
    this.info = null;
    this.downloads = ["png"];
    this.stats = new Stats();
    this.received = 0;   // packets that arrived
    this.applied = 0;    // ... applied to the image held
    this.rejected = 0;   // ... rejected (a gap or a bad packet)
    this.connected = false;
    this.closed = false;         // this viewer is gone (close())
    this.figureClosed = false;   // the figure is gone on the server
    this.refused = null;
    this.retries = 0;
    this.chain = Promise.resolve();
    this.resyncing = false;
    this.credit = null;      // {n, seq, epoch}: frames applied, credit not yet returned
    this.creditFrame = -1;   // display.frames when credit last went back
    this.lastResize = null;
    this.userSized = false;
    this.onpaint = null;   // hook: onpaint(frame, now) after each paint (tests, benchmarks)
    this._build(parent);
    this.display = new DisplayCanvas(this.canvas, {
      onTake: () => this._takeCredit(),
      onPaint: (now, taken) => this._painted(now, taken),
      onLayout: () => this._layout(),
    });
    this.image = this.display.image;   // the image held (epoch, seq): newest applied
    this._unbind = bindInput(this.overlay, this.root, (x, y) => this.toPixels(x, y),
      (event) => this.sendEvent(event), { captureScroll: () => this.state.capture_scroll !== false });
    this._observe();
    this.connect();
  }

  // -- the page ------------------------------------------------------------------------

  _build(parent) {
    const root = this.root = el("section", "ff-figure" + (this.fit ? " ff-fit" : ""), parent);
    root.tabIndex = 0;
    root.dataset.figure = this.id;
    const head = el("header", "ff-head", root);
    this.titleEl = el("span", "ff-title", head, `Figure ${this.id}`);
    this.connEl = el("span", "ff-conn", head, "connecting…");
    const bar = this.toolbar = el("nav", "ff-toolbar", root);
    this.buttons = {};
    const tool = (name, glyph, tip, onclick, cls = "") => {
      const b = this.buttons[name] = el("button", `ff-tool${cls}`, bar, glyph);
      b.type = "button";
      b.title = tip;
      b.setAttribute("aria-label", tip);
      b.dataset.tool = name;
      b.addEventListener("click", onclick);
    };
    for (const [name, glyph, tip] of TOOLS) {
      tool(name, glyph, tip, () => this.sendEvent({ type: "toolbar", name }));
    }
    el("span", "ff-sep", bar);
    this.formatEl = el("select", "ff-format", bar);
    this.formatEl.title = "Download format";
    tool("download", "⤓", "Download the figure", () => this.download(this.formatEl.value));
    tool("stats", "fps", "Show live stats", () => this.toggleStats(), " ff-stats-toggle");
    // Closes the figure on the server, as closing its window would (a blocking show()
    // returns once all its figures are closed).
    tool("close", "✕", "Close the figure",
         () => this.sendEvent({ type: "toolbar", name: "close" }), " ff-close");
    this._setFormats(["png"]);

    const stage = this.stage = el("div", "ff-stage", root);
    this.canvas = el("canvas", "ff-image", stage);
    this.overlay = el("canvas", "ff-overlay", stage);
    this.veil = el("div", "ff-veil", stage, "connecting…");
    this.timeline = new TimelineBar(root, (event) => this.sendEvent(event), "ff");
    const foot = el("footer", "ff-foot", root);
    this.messageEl = el("span", "ff-message", foot, "");
    this.statsEl = el("div", "ff-statsline", root, "");
    this.statsEl.hidden = true;
    this.handle = el("div", "ff-handle", root);
    this.handle.title = "Drag to resize the figure";
    this._bindHandle();
  }

  _setFormats(formats) {
    const current = this.formatEl.value;
    this.formatEl.textContent = "";
    for (const f of formats) {
      const o = el("option", "", this.formatEl, f);
      o.value = f;
    }
    if (formats.includes(current)) this.formatEl.value = current;
  }

  /**
   * Client coordinates -> the figure's CSS pixels from its top left, the unit of input
   * events (the figure is drawn at device_pixel_ratio image pixels per CSS pixel). The
   * canvas may be shown smaller than that (a narrow page): its scale is taken out.
   */
  toPixels(clientX, clientY) {
    const r = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const sx = r.width ? this.canvas.width / r.width / dpr : 1;
    const sy = r.height ? this.canvas.height / r.height / dpr : 1;
    return [Math.round((clientX - r.left) * sx * 100) / 100, Math.round((clientY - r.top) * sy * 100) / 100];
  }

  _cssSize(w, h) {
    const dpr = window.devicePixelRatio || 1;
    return [w / dpr, h / dpr];
  }

  _layout() {
    const [cw, ch] = this._cssSize(this.canvas.width, this.canvas.height);
    this.canvas.style.width = `${cw}px`;
    this.canvas.style.aspectRatio = `${this.canvas.width} / ${this.canvas.height}`;
    if (!this.fit && !this.userSized) {
      this.stage.style.width = `${cw}px`;
    }
    this._drawOverlay();
  }

  // -- resizing ------------------------------------------------------------------------

  _observe() {
    if (typeof ResizeObserver !== "function") {
      window.addEventListener("resize", () => this._stageResized());
      return;
    }
    this._observer = new ResizeObserver(() => this._stageResized());
    this._observer.observe(this.stage);
  }

  _stageResized() {
    if (!this.fit && !this.userSized) return;
    this.requestResize(this.stage.clientWidth, this.stage.clientHeight);
  }

  _bindHandle() {
    let start = null;
    this.handle.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      this.handle.setPointerCapture(e.pointerId);
      start = { x: e.clientX, y: e.clientY, w: this.stage.clientWidth, h: this.stage.clientHeight };
    });
    this.handle.addEventListener("pointermove", (e) => {
      if (!start) return;
      this.userSized = true;
      this.fit = false;
      this.root.classList.remove("ff-fit");
      this.stage.style.width = `${Math.max(50, start.w + e.clientX - start.x)}px`;
      this.stage.style.height = `${Math.max(50, start.h + e.clientY - start.y)}px`;
    });
    const end = () => { start = null; };
    this.handle.addEventListener("pointerup", end);
    this.handle.addEventListener("pointercancel", end);
  }

  /** Ask the figure for a new size in CSS pixels (sent at most once per animation frame). */
  requestResize(width, height) {
    width = Math.floor(width);
    height = Math.floor(height);
    if (width < 1 || height < 1) return;
    this._wantedSize = [width, height];
    if (this._resizeScheduled) return;
    this._resizeScheduled = true;
    requestAnimationFrame(() => {
      this._resizeScheduled = false;
      const [w, h] = this._wantedSize;
      const dpr = window.devicePixelRatio || 1;
      const key = `${w}x${h}@${dpr}`;
      if (key === this.lastResize || !this.connected) return;
      const [cw, ch] = this._cssSize(this.canvas.width, this.canvas.height);
      if (this.lastResize === null && Math.round(cw) === w && Math.round(ch) === h) {
        this.lastResize = key;   // already that size
        return;
      }
      this.lastResize = key;
      this.sendEvent({ type: "resize", width: w, height: h, device_pixel_ratio: dpr });
    });
  }

  // -- the connection ---------------------------------------------------------------------

  _url(path) {
    const q = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    return `${path}${q}`;
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this._url(`/ws/${encodeURIComponent(this.id)}`)}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.retries = 0;
      this.connected = true;
      this.lastResize = null;
      this.chain = Promise.resolve();
      this.resyncing = false;
      this.credit = null;
      this.creditFrame = -1;
      this._status("live");
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") this._onText(e.data);
      else this._onPacket(e.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.connected = false;
      if (!this.closed) this._reconnect();
    };
  }

  async _reconnect() {
    this._status("reconnecting…", true);
    const wait = RETRY_MS[Math.min(this.retries, RETRY_MS.length - 1)];
    this.retries++;
    await new Promise((r) => setTimeout(r, wait));
    // A refusal (wrong token, foreign page) is final: say so instead of retrying.
    try {
      const r = await fetch(this._url("/api/figures"), { cache: "no-store" });
      if (r.status === 403) {
        this.refused = (await r.text()).trim();
        this._status(this.refused, true);
        return;
      }
    } catch (_) { /* server down: keep trying */ }
    this.connect();
  }

  _status(text, veil = false) {
    this.connEl.textContent = text;
    this.root.classList.toggle("ff-offline", veil);
    this.veil.textContent = text;
    this.veil.hidden = !veil;
  }

  _send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  sendEvent(event) {
    this._send({ type: "event", event });
  }

  _onText(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (_) { return; }
    switch (msg.type) {
      case "welcome":
        this._setInfo(msg.info);
        this.downloads = msg.downloads || ["png"];
        this._setFormats(this.downloads);
        this._setState(msg.state || {});
        this._status(msg.server ? "live" : "waiting for the server…", !msg.server && this.painted === 0);
        if (this.fit) this._stageResized();
        break;
      case "state":
        this._setState(msg.state || {});
        break;
      case "figures": {
        const info = (msg.figures || []).find((f) => f.id === this.id);
        if (info) this._setInfo(info);
        // Listed again after it closed: a new figure under the same id (pyplot numbers
        // the next figure 1 again when a script goes on after a blocking show()).
        if (info && this.figureClosed) this._reopen();
        break;
      }
      case "status":
        this._status(msg.server ? "live" : "server unreachable — waiting…", !msg.server);
        break;
      case "close":
        this.figureClosed = true;
        this._status("figure closed", true);
        this.timeline.update(null);
        this._enableTools(false);
        break;
      case "stats":
        this.stats.server = msg.server;
        break;
      case "error":
        console.warn(`fastfig figure ${this.id}: ${msg.message}`);
        break;
      default:
        break;
    }
  }

  _enableTools(on) {
    for (const [name] of TOOLS) this.buttons[name].disabled = !on;
    this.buttons.close.disabled = !on;
  }

  /** Watch the figure anew: a new connection, a new state, a new first keyframe. */
  _reopen() {
    this.figureClosed = false;
    this._enableTools(true);
    this.state = {};
    const old = this.ws;
    this.connect();
    if (old) old.close();
  }

  _setInfo(info) {
    if (!info) return;
    this.info = info;
    if (!this.state.title && info.title) this.titleEl.textContent = info.title;
  }

  _setState(state) {
    Object.assign(this.state, state);
    if ("title" in state) {
      this.titleEl.textContent = state.title || `Figure ${this.id}`;
      if (this.fit) document.title = state.title || document.title;
    }
    if ("message" in state) this.messageEl.textContent = state.message || "";
    if ("cursor" in state) this.overlay.style.cursor = state.cursor || "default";
    if ("navigate_mode" in state) {
      this.buttons.pan.classList.toggle("ff-active", state.navigate_mode === "PAN");
      this.buttons.zoom.classList.toggle("ff-active", state.navigate_mode === "ZOOM");
    }
    if ("history" in state && state.history) {
      this.buttons.back.disabled = state.history.back === false;
      this.buttons.forward.disabled = state.history.forward === false;
    }
    if ("rubberband" in state) this._drawOverlay();
    if ("timeline" in state && !this.figureClosed) this.timeline.update(state.timeline);
  }

  // -- frames -------------------------------------------------------------------------

  /** Paints so far: display frames in which the canvas changed (at most one per frame). */
  get painted() {
    return this.display.painted;
  }

  /** Frames applied but replaced by a newer one before the next display frame. */
  get dropped() {
    return this.display.dropped;
  }

  /** Frames received and not yet painted, dropped or rejected (decoding, or awaiting paint). */
  get pending() {
    return this.received - this.painted - this.dropped - this.rejected;
  }

  /** The counters together: received = painted + dropped + rejected + pending. */
  counts() {
    return { received: this.received, applied: this.applied, painted: this.painted,
             dropped: this.dropped, rejected: this.rejected, pending: this.pending };
  }

  _onPacket(buffer) {
    const received = performance.now();
    this.received++;
    this.stats.received(buffer.byteLength);
    // Credit policy (PROTOCOL.md 3.5): credit goes back with the paint that shows a frame
    // (or replaces it), so the figure is rendered as fast as the display shows it, and a
    // hidden tab, whose animation frames stop, stops taking frames. Except: a packet that
    // finds nothing else in hand and a display frame gone by since the last credit is
    // credited at once. The server renders the next frame only once this one is credited;
    // crediting here lets that render overlap this frame's decode and paint when one
    // round trip takes longer than a display frame (a loaded machine, a slow figure),
    // and costs nothing otherwise: a frame credited at its paint arrives within the same
    // display frame and waits for the next paint.
    const early = this.pending === 1 && this.display.frames > this.creditFrame;
    if (early) this._returnCredit(1, this.image.seq, this.image.epoch, true);
    let frame;
    try {
      frame = parsePacket(buffer);
    } catch (e) {
      this._rejected(e, null, early);
      return;
    }
    // Every packet is decoded as it arrives (PNGs by the browser's own decoder threads, in
    // parallel with the packets before it) and applied in arrival order to the image held;
    // the visible canvas is painted from it once per display frame (display.js).
    const decoded = decodeFrame(frame);
    decoded.catch(() => {});
    this.chain = this.chain.then(() => decoded).then((ops) => {
      this.display.apply(frame, ops);
      this.applied++;
      if (frame.keyframe) this.resyncing = false;
      this.stats.applied(performance.now() - received, frame.keyframe);
      const c = this.credit || (this.credit = { n: 0, seq: 0, epoch: 0 });
      if (!early) c.n++;
      c.seq = frame.seq;
      c.epoch = frame.epoch;
    }, (e) => this._rejected(e, frame, early)).catch((e) => this._rejected(e, frame, early));
  }

  _returnCredit(n, seq, epoch, ok) {
    this.creditFrame = this.display.frames;
    this.stats.credited();
    this._send({ type: "credit", n, seq: seq === null ? 0 : seq, epoch: epoch === null ? 0 : epoch, ok });
  }

  _takeCredit() {
    const c = this.credit;
    this.credit = null;
    // (n is 0 when every frame about to be painted was credited on arrival)
    if (c && c.n) this._returnCredit(c.n, c.seq, c.epoch, true);
  }

  _painted(now, taken) {
    const frame = taken[taken.length - 1];
    const latency = frame.timestampUs ? Date.now() - frame.timestampUs / 1000 : null;
    this.stats.painted(latency, taken.length - 1);
    if (this.veil.hidden === false && this.connected) this._status("live");
    if (this.onpaint) this.onpaint(frame, now);
  }

  _rejected(error, frame, credited) {
    this.rejected++;
    this.stats.rejected++;
    if (!(error instanceof FrameGap)) console.warn(`fastfig figure ${this.id}: ${error.message || error}`);
    // A rejected frame's credit goes back at once: nothing will paint it.
    if (!credited) this._returnCredit(1, frame ? frame.seq : 0, frame ? frame.epoch : 0, false);
    if (!this.resyncing) {
      this.resyncing = true;
      this._send({ type: "resync" });
    }
  }

  // -- overlay: rubberband ------------------------------------------------------------

  _drawOverlay() {
    drawRubberband(this.overlay, this.canvas, this.state.rubberband, window.devicePixelRatio || 1);
  }

  // -- toolbar extras -----------------------------------------------------------------

  async download(format) {
    const name = `figure-${this.id}.${format}`;
    let blob;
    try {
      this.messageEl.textContent = `saving ${name}…`;
      const r = await fetch(this._url(`/download/${encodeURIComponent(this.id)}.${format}`), { cache: "no-store" });
      if (r.ok) {
        blob = await r.blob();
      } else if (format === "png" && r.status !== 403) {
        // A figure that cannot save itself (not served by the fastfig backend): the
        // picture on screen is a faithful PNG.
        blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
      } else {
        throw new Error((await r.text()).trim() || r.statusText);
      }
      this.messageEl.textContent = "";
    } catch (e) {
      this.messageEl.textContent = `download failed: ${e.message || e}`;
      return;
    }
    const url = URL.createObjectURL(blob);
    const a = el("a", "", document.body);
    a.href = url;
    a.download = name;
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  toggleStats() {
    const show = this.statsEl.hidden;
    this.statsEl.hidden = !show;
    this.buttons.stats.classList.toggle("ff-active", show);
    clearInterval(this._statsTimer);
    if (show) {
      const tick = () => {
        this._send({ type: "stats" });
        this.statsEl.textContent = this.stats.text();
      };
      tick();
      this._statsTimer = setInterval(tick, 500);
    }
  }

  close() {
    this.closed = true;
    clearInterval(this._statsTimer);
    if (this._observer) this._observer.disconnect();
    this._unbind();
    if (this.ws) this.ws.close();
    this.root.remove();
  }
}
