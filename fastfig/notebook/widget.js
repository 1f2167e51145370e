// The fastfig figure in a notebook: an anywidget module (initialize per widget model,
// render per view). Frames arrive as custom comm messages whose one binary buffer is a
// frame packet (PROTOCOL.md section 1); the viewer's own packet.js decodes them and its
// events.js turns input into fastfig events, both loaded from their sources as shipped
// (fastfig/notebook/widget.py puts them in SOURCES), never copied.
//
// One decoded image per model (packet.js's FrameImage, RGBA bytes off the page); each view
// paints it with the viewer's display.js, at most once per display frame and only where
// it changed. Frames reach the page unevenly (the kernel's iopub thread, the server, the
// websocket and JupyterLab's own work in between): two often land in one display frame,
// and only the second would be seen. So decoded frames wait in a short queue and are
// shown one per display frame, none more than one display frame late (a longer queue is
// merged). Credit for the frames taken goes back every few display frames in one message
// (each comm message costs the kernel a handler and two status messages, which the page
// processes too), and not at all while no view is visible (scrolled away, hidden tab):
// the kernel stops sending, and the newest image comes when a view shows again.

const SOURCES = __FASTFIG_SOURCES__;
const IMPORT = /(\bfrom\s*|\bimport\s*)(["'])\.\/([\w.-]+\.js)\2/g;
const urls = new Map();
/** A blob URL of module name, its relative imports ("./x.js") pointed at theirs. */
function moduleUrl(name) {
  if (!urls.has(name)) {
    const text = SOURCES[name].replace(IMPORT, (_, kw, q, dep) => `${kw}${q}${moduleUrl(dep)}${q}`);
    urls.set(name, URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
  }
  return urls.get(name);
}
const [{ parsePacket, decodeFrame, checkFollows, FrameImage, FrameGap }, { bindInput, TOOLS },
       { DisplayCanvas, drawRubberband }, { TimelineBar }, { el }] =
  await Promise.all([import(moduleUrl("packet.js")), import(moduleUrl("events.js")),
                     import(moduleUrl("display.js")), import(moduleUrl("timeline.js")),
                     import(moduleUrl("dom.js"))]);

const NOT_AGAIN = { apply() {} };
/** The viewer's DisplayCanvas over an image that every view of the model shares: the
 * model applies each frame to it once; a view is only told what changed. */
class SharedDisplay extends DisplayCanvas {
  constructor(canvas, image, options) {
    super(canvas, options);
    this.image = image;
  }

  apply(frame, ops) {
    const shared = this.image;
    this.image = NOT_AGAIN;
    try {
      super.apply(frame, ops);
    } finally {
      this.image = shared;
    }
  }

  /** Paint the whole image at the next display frame (a new view, one back in sight). */
  repaint() {
    if (this.image.seq === null) return;
    this.apply({ keyframe: true, rects: [], seq: this.image.seq, epoch: this.image.epoch }, []);
  }

  /** Paint what was applied now, in this display frame's callback (a frame applied
   * there would otherwise wait for the next one). */
  paintNow(now) {
    if (this.taken.length) this._paint(now);
  }
}

// Credit goes back once CREDIT_BATCH frames were taken, or CREDIT_FRAMES display frames
// after the first of them (at 60 frames/s: 20 credit messages a second, not 60). The
// kernel's window (flow.py WINDOW) covers the frames this holds back plus a round trip.
const CREDIT_BATCH = 4;
const CREDIT_FRAMES = 3;

// Kernel states in which nothing will answer this figure any more.
const GONE = { dead: "kernel died", restarting: "kernel restarted", autorestarting: "kernel restarted" };
const figures = new Map();   // uid -> Figure: initialize and render get different model facades

function fromBase64(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function asArrayBuffer(b) {
  if (b instanceof ArrayBuffer) return b;
  const view = b.buffer ? b : new Uint8Array(b);
  if (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength) return view.buffer;
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}

class Figure {
  constructor(model) {
    this.model = model;
    this.instance = Math.random().toString(36).slice(2, 10);
    this.image = new FrameImage();
    this.views = new Set();
    this.chain = Promise.resolve();
    this.natural = null;        // the figure's own CSS size, from its first image
    this.resyncing = false;
    this.held = 0;              // credit of frames taken, not yet returned
    this.heldSeq = null;
    this.creditWait = 0;        // display frames the credit held has waited
    this.ready = [];            // [frame, ops] decoded and checked, not yet shown, oldest first
    this.tail = { epoch: null, seq: null, width: 0, height: 0 };   // the newest of them
    this.applied = 0;
    this.rejected = 0;
    this.gone = null;           // why the kernel will not answer any more
    this.closed = false;
    this.base64 = false;
    this._onMsg = (msg, buffers) => this.onMessage(msg, buffers);
    model.on("msg:custom", this._onMsg);
    model.on("change:state", () => this.views.forEach((v) => v.setState(model.get("state") || {})));
    model.on("comm_live_update", () => this.checkKernel());
    // Every status change, so that a restart's brief "restarting" is not missed between
    // two looks (JupyterLab's kernel connection has this signal; elsewhere: the timer).
    const kernel = model.widget_manager && model.widget_manager.kernel;
    if (kernel && kernel.statusChanged && kernel.statusChanged.connect) {
      this._onStatus = (_, status) => this.checkKernel(status);
      kernel.statusChanged.connect(this._onStatus);
      this._kernel = kernel;
    }
    model.on("change:device_pixel_ratio", () => this.views.forEach((v) => v.layout()));
    this._kernelTimer = setInterval(() => {
      this.checkKernel();
      // A view whose output went away without a new render to take it over.
      for (const v of this.views) {
        if (v.orphaned && (v.orphanChecks = (v.orphanChecks || 0) + 1) > 4) v.destroy();
        else if (!v.orphaned) v.orphanChecks = 0;
      }
    }, 500);
    this.send({ type: "join", instance: this.instance });
  }

  send(msg) {
    if (!this.gone) this.model.send(msg);
  }

  get visible() {
    if (document.hidden) return false;
    for (const v of this.views) if (v.intersecting) return true;
    return false;
  }

  onMessage(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "frame": {
        // Figure state that changed with this frame (the timeline's index) rides along.
        if (msg.state) this.views.forEach((v) => v.setState(msg.state));
        let data = buffers && buffers.length ? asArrayBuffer(buffers[0]) : null;
        if (!data && typeof msg.b64 === "string") data = fromBase64(msg.b64);
        else if (!data) {
          // This frontend drops binary buffers: ask for base64 from now on.
          if (!this.base64) this.send({ type: "base64" });
          this.base64 = true;
          return;
        }
        this.onPacket(data);
        break;
      }
      case "download":
        this.views.forEach((v) => v.downloaded(msg, buffers));
        break;
      case "closed":
        this.closed = true;
        this.views.forEach((v) => {
          v.status("figure closed", true);
          v.timeline.update(null);
        });
        break;
      default:
        break;
    }
  }

  onPacket(buffer) {
    const received = performance.now();
    this.received = (this.received || 0) + 1;
    let frame;
    try {
      frame = parsePacket(buffer);
    } catch (e) {
      this.reject(e, null);
      return;
    }
    const decoded = decodeFrame(frame);   // starts now, in parallel with earlier frames
    decoded.catch(() => {});
    this.chain = this.chain.then(() => decoded).then((ops) => {
      checkFollows(this.tail, frame);   // throws FrameGap
      this.tail = { epoch: frame.epoch, seq: frame.seq, width: frame.width, height: frame.height };
      if (frame.keyframe) this.resyncing = false;
      // receipt to decoded, ms (a moving average): decode time plus the queue before it
      const ms = performance.now() - received;
      this.applyMs = this.applyMs === undefined ? ms : 0.9 * this.applyMs + 0.1 * ms;
      this.ready.push([frame, ops]);
      this.scheduleShow();
    }, (e) => this.reject(e, frame)).catch((e) => this.reject(e, frame));
  }

  scheduleShow() {
    if (!this.showScheduled) {
      this.showScheduled = true;
      requestAnimationFrame((now) => this.show(now));
    }
  }

  /** A display frame: apply the oldest frame waiting (all but the newest when more than
   * two wait) to the image, and every view paints it now. */
  show(now) {
    this.showScheduled = false;
    const n = this.ready.length;
    if (!n) return;
    for (const [frame, ops] of this.ready.splice(0, n <= 2 ? 1 : n - 1)) {
      try {
        this.image.apply(frame, ops);
      } catch (e) {
        this.reject(e, frame);
        continue;
      }
      this.applied++;
      this.credit(frame, true);
      for (const v of this.views) v.display.apply(frame, ops);
    }
    for (const v of this.views) v.display.paintNow(now);
    if (this.ready.length) this.scheduleShow();
  }

  reject(error, frame) {
    this.rejected++;
    this.lastRejected = String(error && error.message || error);   // for stats and tests
    if (!(error instanceof FrameGap)) console.warn(`fastfig: ${error.message || error}`);
    this.credit(frame, false);
    if (!this.resyncing) {
      this.resyncing = true;
      this.send({ type: "resync", instance: this.instance });
    }
  }

  credit(frame, ok) {
    this.held++;
    if (frame && ok) this.heldSeq = [frame.seq, frame.epoch];
    this.scheduleCredit();
  }

  scheduleCredit() {
    if (this.visible && !this.creditScheduled) {
      this.creditScheduled = true;
      requestAnimationFrame(() => {
        this.creditScheduled = false;
        if (!this.visible || !this.held) return;
        if (this.held >= CREDIT_BATCH || ++this.creditWait >= CREDIT_FRAMES) this.flushCredit();
        else this.scheduleCredit();
      });
    }
  }

  flushCredit() {
    this.creditWait = 0;
    if (!this.held) return;
    const msg = { type: "credit", n: this.held, instance: this.instance };
    if (this.heldSeq) [msg.seq, msg.epoch] = this.heldSeq;
    this.held = 0;
    this.send(msg);
  }

  visibilityChanged() {
    if (this.visible) this.flushCredit();
  }

  checkKernel(status) {
    const kernel = this.model.widget_manager && this.model.widget_manager.kernel;
    const why = kernel ? GONE[status || kernel.status] || (kernel.isDisposed ? "kernel shut down" : null) : null;
    if (why && !this.gone) {
      this.gone = why;
      this.views.forEach((v) => v.status(`${why}: this figure is no longer live`, true));
    }
  }

  dispose() {
    this.send({ type: "leave", instance: this.instance });
    clearInterval(this._kernelTimer);
    if (this._kernel) this._kernel.statusChanged.disconnect(this._onStatus);
    this.model.off("msg:custom", this._onMsg);
    this.views.forEach((v) => v.destroy());
    figures.delete(this.model.get("uid"));
  }
}

class View {
  constructor(figure, el) {
    this.figure = figure;
    this.model = figure.model;
    this.intersecting = true;
    this.lastResize = null;
    this.el = el;
    this.build(el);
    this.display = new SharedDisplay(this.canvas, figure.image, {
      onLayout: () => this.layout(),
      onPaint: () => this.painted(),
    });
    this.setState(this.model.get("state") || {});
    this.unbind = bindInput(this.overlay, this.root, (x, y) => this.toPixels(x, y),
      (event) => this.figure.send({ type: "event", event }),
      { captureScroll: () => this.state.capture_scroll !== false });
    this.observers = [];
    if (typeof IntersectionObserver === "function") {
      const io = new IntersectionObserver((entries) => {
        this.intersecting = entries[entries.length - 1].isIntersecting;
        this.figure.visibilityChanged();
      });
      io.observe(this.root);
      this.observers.push(io);
    }
    if (typeof ResizeObserver === "function") {
      this.resizeObserver = new ResizeObserver(() => this.fit());
      this.resizeObserver.observe(el);
      this.observers.push(this.resizeObserver);
    }
    this.onVisibility = () => this.figure.visibilityChanged();
    document.addEventListener("visibilitychange", this.onVisibility);
    figure.views.add(this);
    if (figure.gone) this.status(`${figure.gone}: this figure is no longer live`, true);
    else if (figure.closed) this.status("figure closed", true);
    this.display.repaint();
  }

  build(parent) {
    const root = this.root = el("div", "fastfig-figure", parent);
    root.tabIndex = 0;
    // Keys typed into a focused figure go to matplotlib, not to the notebook's shortcuts.
    root.dataset.lmSuppressShortcuts = "true";
    root.addEventListener("keydown", (e) => e.stopPropagation());
    root.addEventListener("keyup", (e) => e.stopPropagation());
    const bar = el("div", "fastfig-toolbar", root);
    this.buttons = {};
    for (const [name, glyph, tip] of TOOLS) {
      const b = el("button", "fastfig-tool", bar, glyph);
      b.type = "button";
      b.title = tip;
      b.dataset.tool = name;
      b.addEventListener("click", () => this.figure.send({ type: "event", event: { type: "toolbar", name } }));
      this.buttons[name] = b;
    }
    this.formatEl = el("select", "fastfig-format", bar);
    this.formatEl.title = "Format to save in";
    for (const f of this.model.get("formats") || ["png"]) el("option", "", this.formatEl, f).value = f;
    const save = this.buttons.download = el("button", "fastfig-tool", bar, "⤓");
    save.type = "button";
    save.title = "Save the figure";
    save.dataset.tool = "download";
    save.addEventListener("click", () => {
      this.message.textContent = "saving…";
      this.wantsDownload = true;   // the reply goes to every view; this one saves it
      this.figure.send({ type: "download", format: this.formatEl.value });
    });
    this.message = el("span", "fastfig-message", bar, "");
    const stage = this.stage = el("div", "fastfig-stage", root);
    this.canvas = el("canvas", "fastfig-image", stage);
    this.overlay = el("canvas", "fastfig-overlay", stage);
    this.veil = el("div", "fastfig-veil", stage, "");
    this.veil.hidden = true;
    this.timeline = new TimelineBar(root, (event) => this.figure.send({ type: "event", event }), "fastfig");
    this.state = {};
  }

  status(text, veil) {
    this.veil.textContent = text;
    this.veil.hidden = !veil;
    this.root.classList.toggle("fastfig-offline", !!veil);
  }

  setState(state) {
    Object.assign(this.state, state);
    if ("message" in state && this.message.textContent !== "saving…") this.message.textContent = state.message || "";
    if ("cursor" in state) this.overlay.style.cursor = state.cursor || "default";
    if ("navigate_mode" in state) {
      this.buttons.pan.classList.toggle("fastfig-active", state.navigate_mode === "PAN");
      this.buttons.zoom.classList.toggle("fastfig-active", state.navigate_mode === "ZOOM");
    }
    if (state.history) {
      this.buttons.back.disabled = state.history.back === false;
      this.buttons.forward.disabled = state.history.forward === false;
    }
    if ("rubberband" in state) this.drawOverlay();
    if ("timeline" in state) this.timeline.update(state.timeline);
  }

  painted() {
    this.root.dataset.seq = String(this.display.paintedSeq);
    if (!this.figure.gone && !this.figure.closed && !this.veil.hidden) this.status("", false);
    if (View.onpaint) View.onpaint(this);
  }

  /** An update of the output (its image/png kept current) renders the widget anew and
   * drops this view's element: the new render takes this view over, canvas and all. */
  get orphaned() {
    return !this.el.parentElement;
  }

  moveTo(el) {
    el.appendChild(this.root);
    if (this.resizeObserver) {
      this.resizeObserver.unobserve(this.el);
      this.resizeObserver.observe(el);
    }
    this.el = el;
    this.display.repaint();
    return this;
  }

  layout() {
    if (!this.canvas.width) return;   // no image yet
    const dpr = window.devicePixelRatio || 1;
    const ratio = this.model.get("device_pixel_ratio") || 1;
    const cw = this.canvas.width / ratio, ch = this.canvas.height / ratio;
    if (!this.figure.natural) this.figure.natural = [cw, ch];
    this.canvas.style.width = `${cw}px`;
    this.canvas.style.aspectRatio = `${this.canvas.width} / ${this.canvas.height}`;
    this.drawOverlay();
    if (dpr !== ratio || !this.lastResize) this.fit();
  }

  /** Ask the kernel for the size this view shows the figure at: its own size, narrowed
   * to the cell's width (aspect kept), drawn at the screen's pixel density. */
  fit() {
    if (!this.figure.natural || this.figure.gone || !this.root.isConnected) return;
    const dpr = window.devicePixelRatio || 1;
    const room = this.el.clientWidth;
    if (!room) return;   // not laid out (hidden, being moved)
    let [w, h] = this.figure.natural;
    if (room > 0 && room < w) {
      h = Math.floor(h * room / w);
      w = room;
    }
    w = Math.floor(w);
    h = Math.floor(h);
    const key = `${w}x${h}@${dpr}`;
    if (key === this.lastResize) return;
    const ratio = this.model.get("device_pixel_ratio") || 1;
    const same = Math.round(this.canvas.width / ratio) === w && Math.round(this.canvas.height / ratio) === h;
    this.lastResize = key;
    if (same && ratio === dpr) return;
    this.figure.send({ type: "event", event: { type: "resize", width: w, height: h, device_pixel_ratio: dpr } });
  }

  /** Client coordinates -> the figure's CSS pixels from its top left (input events). */
  toPixels(clientX, clientY) {
    const r = this.canvas.getBoundingClientRect();
    const ratio = this.model.get("device_pixel_ratio") || 1;
    const sx = r.width ? this.canvas.width / r.width / ratio : 1;
    const sy = r.height ? this.canvas.height / r.height / ratio : 1;
    return [Math.round((clientX - r.left) * sx * 100) / 100, Math.round((clientY - r.top) * sy * 100) / 100];
  }

  drawOverlay() {
    drawRubberband(this.overlay, this.canvas, this.state.rubberband,
                   this.model.get("device_pixel_ratio") || 1);
  }

  downloaded(msg, buffers) {
    if (!this.wantsDownload) return;
    this.wantsDownload = false;
    this.message.textContent = "";
    if (msg.error) {
      this.message.textContent = `save failed: ${msg.error}`;
      return;
    }
    const data = buffers && buffers.length ? asArrayBuffer(buffers[0]) : fromBase64(msg.b64 || "");
    const url = URL.createObjectURL(new Blob([data], { type: msg.mime || "application/octet-stream" }));
    const a = el("a", "", document.body);
    a.href = url;
    a.download = `${msg.name || "figure"}.${msg.format}`;
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  destroy() {
    this.figure.views.delete(this);
    this.unbind();
    this.observers.forEach((o) => o.disconnect());
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.root.remove();
    this.figure.visibilityChanged();
  }
}

View.onpaint = null;   // hook for tests and benchmarks: called with the view after each paint

function initialize({ model }) {
  const figure = new Figure(model);
  figures.set(model.get("uid"), figure);
  return () => figure.dispose();
}

function render({ model, el }) {
  const figure = figures.get(model.get("uid"));
  if (!figure) return undefined;
  const orphan = [...figure.views].find((v) => v.orphaned);
  const view = orphan ? orphan.moveTo(el) : new View(figure, el);
  const owner = view.owner = {};
  return () => { if (view.owner === owner) view.destroy(); };
}

globalThis.fastfigNotebook = { figures, View };
export default { initialize, render };
