// The timeline bar of an animated figure (PROTOCOL.md, the "timeline" event and state
// field): play/pause, step, direction, speed, and a scrubber where the number of frames is
// known, with the frames the figure can show at once (its cache) shaded. Shared by the
// browser viewer (viewer.js) and the notebook widget (notebook/widget.js): each gives it
// the function its toolbar sends events with, and its CSS class prefix.
//
// The bar is hidden until the figure's state has a "timeline" field; a figure without an
// animation never sends one.

import { el } from "./dom.js";

export const SPEEDS = [0.25, 0.5, 1, 2, 4];
// How long a seek may go unanswered before the next one is sent anyway (ms).
const SEEK_PATIENCE_MS = 1000;

export class TimelineBar {
  /**
   * parent: where the bar goes; send(event): sends a fastfig event ({type: "timeline",
   * action, ...}) the way the toolbar's are; prefix: the CSS class prefix ("ff", "fastfig").
   */
  constructor(parent, send, prefix = "ff") {
    this.send = send;
    this.state = null;
    this.pendingSeek = null;    // the scrubber's newest index, not sent yet
    this.seekSent = false;      // a seek went in this display frame
    this.inFlight = null;       // the index of the seek the figure has not answered yet
    this._inFlightTimer = null;
    this.scrubbing = false;     // the pointer holds the scrubber: the server's index waits
    const p = (name) => `${prefix}-${name}`;
    this.activeClass = p("active");
    const bar = this.root = el("div", p("timeline"), parent);
    bar.hidden = true;
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", "Animation timeline");
    const button = (glyph, label, action) => {
      const b = el("button", `${p("tool")} ${p("tl-button")}`, bar, glyph);
      b.type = "button";
      b.title = label;
      b.setAttribute("aria-label", label);
      b.dataset.timeline = action;
      b.addEventListener("click", () => this[action]());
      return b;
    };
    // (glyphs from Geometric Shapes and Arrows, which every system font has)
    this.stepBackButton = button("|◀", "Previous frame (←)", "stepBack");
    this.playButton = button("▶", "Play (space)", "togglePlay");
    this.stepForwardButton = button("▶|", "Next frame (→)", "stepForward");
    this.reverseButton = button("⇄", "Play in reverse", "toggleDirection");
    this.reverseButton.setAttribute("aria-pressed", "false");

    this.speedEl = el("select", p("tl-speed"), bar);
    this.speedEl.title = "Playback speed";
    this.speedEl.setAttribute("aria-label", "Playback speed");
    for (const s of SPEEDS) el("option", "", this.speedEl, `${s}×`).value = String(s);
    this.speedEl.value = "1";
    this.speedEl.addEventListener("change", () => {
      this.send({ type: "timeline", action: "speed", speed: Number(this.speedEl.value) });
    });

    const scrub = this.scrubEl = el("div", p("tl-scrub"), bar);
    this.cachedEl = el("div", p("tl-cached"), scrub);
    this.cachedEl.title = "Frames shown at once (cached)";
    const range = this.rangeEl = el("input", p("tl-range"), scrub);
    range.type = "range";
    range.min = "0";
    range.step = "1";
    range.setAttribute("aria-label", "Frame");
    range.addEventListener("pointerdown", () => { this.scrubbing = true; });
    range.addEventListener("pointerup", () => { this.scrubbing = false; });
    range.addEventListener("pointercancel", () => { this.scrubbing = false; });
    range.addEventListener("input", () => this.seek(Number(range.value)));
    this.indexEl = el("span", p("tl-index"), bar, "");
    this.indexEl.title = "Frame index / number of frames";
    this.indexEl.setAttribute("aria-live", "off");

    // Keys act only while the bar has the focus, and go no further: the figure's own key
    // handling (matplotlib's shortcuts) and the notebook's never see them.
    this._onKey = (e) => this._key(e);
    bar.addEventListener("keydown", this._onKey);
    bar.addEventListener("keyup", this._onKey);
  }

  get shown() {
    return !this.root.hidden;
  }

  // -- actions ------------------------------------------------------------------------

  togglePlay() {
    const playing = !!(this.state && this.state.playing);
    this.send({ type: "timeline", action: playing ? "pause" : "play" });
  }

  stepBack() {
    this.send({ type: "timeline", action: "step", delta: -1 });
  }

  stepForward() {
    this.send({ type: "timeline", action: "step", delta: 1 });
  }

  toggleDirection() {
    const direction = this.state && this.state.direction === -1 ? 1 : -1;
    this.send({ type: "timeline", action: "direction", direction });
  }

  /**
   * Show frame index. Scrubbing makes many inputs a display frame, and a figure may take
   * longer than one to show a frame: at most one seek goes per display frame (the first
   * one at once, so the figure can answer before the next refresh) and one at a time (the
   * next once the figure's state shows the one before), always the newest index. The
   * figure then never works through a backlog of frames nobody will see.
   */
  seek(index) {
    this._showIndex(index);
    this.pendingSeek = index;
    this._flushSeek();
  }

  _flushSeek() {
    const index = this.pendingSeek;
    if (index === null || this.seekSent || this.inFlight !== null) return;
    this.pendingSeek = null;
    if (this.state && index === this.state.index) return;   // shown already
    this.send({ type: "timeline", action: "seek", index });
    this.seekSent = true;
    this.inFlight = index;
    requestAnimationFrame(() => {
      this.seekSent = false;
      this._flushSeek();
    });
    // A seek the figure cannot answer (a frame no longer available) changes no state.
    clearTimeout(this._inFlightTimer);
    this._inFlightTimer = setTimeout(() => this._answered(), SEEK_PATIENCE_MS);
  }

  _answered() {
    clearTimeout(this._inFlightTimer);
    this.inFlight = null;
    this._flushSeek();
  }

  _key(e) {
    if (e.ctrlKey || e.altKey || e.metaKey) return;
    const act = { " ": "togglePlay", ArrowLeft: "stepBack", ArrowRight: "stepForward" }[e.key];
    if (!act || e.target === this.speedEl) return;
    e.preventDefault();      // no button click on space, no scrubber move on arrows
    e.stopPropagation();
    if (e.type === "keydown" && !(e.repeat && act === "togglePlay")) this[act]();
  }

  // -- state from the figure ----------------------------------------------------------

  /** The figure's "timeline" state field (null or undefined: no timeline: hidden). */
  update(state) {
    this.state = state || null;
    this.root.hidden = !state;
    if (!state) return;
    const playing = !!state.playing;
    this.playButton.textContent = playing ? "▮▮" : "▶";
    const label = playing ? "Pause (space)" : "Play (space)";
    this.playButton.title = label;
    this.playButton.setAttribute("aria-label", label);
    this.playButton.setAttribute("aria-pressed", String(playing));
    const reverse = state.direction === -1;
    this.reverseButton.setAttribute("aria-pressed", String(reverse));
    this.reverseButton.classList.toggle(this.activeClass, reverse);
    const speed = String(state.speed);
    if (![...this.speedEl.options].some((o) => o.value === speed)) {
      el("option", "", this.speedEl, `${state.speed}×`).value = speed;
    }
    this.speedEl.value = speed;
    const length = Number.isInteger(state.length) ? state.length : null;
    this.scrubEl.hidden = length === null;
    if (length !== null) {
      this.rangeEl.max = String(Math.max(0, length - 1));
      const cached = state.cached;
      const span = Math.max(1, length);
      this.cachedEl.hidden = !cached;
      if (cached) {
        this.cachedEl.style.left = `${(100 * cached[0]) / span}%`;
        this.cachedEl.style.width = `${(100 * (cached[1] - cached[0] + 1)) / span}%`;
      }
    }
    if (this.inFlight !== null && this._answers(state)) this._answered();
    // While the user scrubs, the thumb and the number follow the pointer, not the echo.
    if (!this.scrubbing && this.pendingSeek === null && this.inFlight === null) {
      this._showIndex(state.index);
    }
  }

  /** Whether state shows the seek in flight done. */
  _answers(state) {
    if (state.index === this.inFlight) return true;
    // Playing, the figure may have moved past it before its state went out.
    const ahead = (state.index - this.inFlight) * (state.direction === -1 ? -1 : 1);
    return !!state.playing && ahead > 0 && ahead <= 2;
  }

  _showIndex(index) {
    const length = this.state && Number.isInteger(this.state.length) ? this.state.length : null;
    this.rangeEl.value = String(index);
    this.indexEl.textContent = length === null ? `${index}` : `${index} / ${length}`;
    this.rangeEl.setAttribute("aria-valuetext", length === null ? `frame ${index}`
      : `frame ${index} of ${length}`);
  }

  destroy() {
    clearTimeout(this._inFlightTimer);
    this.root.removeEventListener("keydown", this._onKey);
    this.root.removeEventListener("keyup", this._onKey);
    this.root.remove();
  }
}
