// Browser input -> fastfig input events (the vocabulary of fastfig/protocol.py and
// PROTOCOL.md section 2): pointer positions in figure pixels from the top left, matplotlib
// button numbers and key names, and every modifier held.

const NAMED_KEYS = {
  ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down",
  Enter: "enter", Escape: "escape", Backspace: "backspace", Tab: "tab", Delete: "delete",
  Home: "home", End: "end", PageUp: "pageup", PageDown: "pagedown", Insert: "insert",
  Control: "control", Shift: "shift", Alt: "alt", AltGraph: "alt", Meta: "super", OS: "super",
  CapsLock: "caps_lock", NumLock: "num_lock", ScrollLock: "scroll_lock", Pause: "pause",
  ContextMenu: "menu", PrintScreen: "print", Clear: "clear",
};

// The navigation toolbar's buttons, in both frontends (the viewer and the notebook
// widget): [toolbar action (protocol.TOOLBAR_ACTIONS), glyph, tooltip].
export const TOOLS = [
  ["home", "⌂", "Reset original view"],
  ["back", "←", "Back to previous view"],
  ["forward", "→", "Forward to next view"],
  ["pan", "✥", "Pan axes with left mouse, zoom with right"],
  ["zoom", "⬚", "Zoom to rectangle"],
];

// pointer event button -> matplotlib MouseButton (left, middle, right, back, forward)
const BUTTONS = [1, 2, 3, 8, 9];

export function modifiers(e) {
  const out = [];
  if (e.ctrlKey) out.push("ctrl");
  if (e.altKey) out.push("alt");
  if (e.shiftKey) out.push("shift");
  if (e.metaKey) out.push("super");
  return out;
}

/**
 * The matplotlib name of a key event ("a", "A", "ctrl+a", "ctrl+shift+left", "f5",
 * "control"), or null for keys with no name (dead keys, IME composition).
 * As in matplotlib, shift is folded into a printable character ("A", "!") and named for
 * other keys ("shift+left"); a modifier key pressed alone is just its own name.
 */
export function keyName(e) {
  let key = e.key;
  if (!key || key === "Dead" || key === "Unidentified" || key === "Process") return null;
  let base;
  const printable = [...key].length === 1;
  if (printable) {
    base = key;
  } else if (key in NAMED_KEYS) {
    base = NAMED_KEYS[key];
  } else if (/^F\d{1,2}$/.test(key)) {
    base = key.toLowerCase();
  } else {
    base = key.toLowerCase().replace(/[^a-z0-9_]/g, "");
    if (!/^[a-z][a-z0-9_]{1,19}$/.test(base)) return null;
  }
  if (["control", "shift", "alt", "super"].includes(base)) return base;
  const mods = [];
  if (e.ctrlKey) mods.push("ctrl");
  if (e.altKey) mods.push("alt");
  if (e.shiftKey && !printable) mods.push("shift");
  if (e.metaKey) mods.push("super");
  // With ctrl held the browser may report the letter unshifted: keep matplotlib's "ctrl+A".
  if (printable && e.shiftKey && base.length === 1 && base.toUpperCase() !== base.toLowerCase()) {
    base = base.toUpperCase();
  }
  return mods.length ? `${mods.join("+")}+${base}` : base;
}

/**
 * Listen to pointer, wheel and key input on element (the figure's canvas area) and call
 * send(event) with fastfig events. toPixels(clientX, clientY) gives figure pixels.
 * Pointer moves are coalesced: at most one per animation frame, the latest.
 * Returns a function that removes every listener.
 */
export function bindInput(element, focusTarget, toPixels, send, options = {}) {
  let pendingMove = null;
  let moveScheduled = false;
  const listeners = [];
  const on = (target, type, fn, opts) => {
    target.addEventListener(type, fn, opts);
    listeners.push(() => target.removeEventListener(type, fn, opts));
  };

  const pointer = (type, e, extra = {}) => {
    const [x, y] = toPixels(e.clientX, e.clientY);
    return { type, x, y, buttons: e.buttons & 0xffff, modifiers: modifiers(e), ...extra };
  };
  const flushMove = () => {
    moveScheduled = false;
    if (pendingMove) {
      send(pendingMove);
      pendingMove = null;
    }
  };

  on(element, "pointermove", (e) => {
    pendingMove = pointer("motion_notify", e);
    if (!moveScheduled) {
      moveScheduled = true;
      requestAnimationFrame(flushMove);
    }
  });
  on(element, "pointerdown", (e) => {
    if (e.button < 0 || e.button >= BUTTONS.length) return;
    flushMove();
    focusTarget.focus({ preventScroll: true });
    try { element.setPointerCapture(e.pointerId); } catch (_) { /* not capturable */ }
    send(pointer("button_press", e, { button: BUTTONS[e.button] }));
    e.preventDefault();
  });
  on(element, "pointerup", (e) => {
    if (e.button < 0 || e.button >= BUTTONS.length) return;
    flushMove();
    send(pointer("button_release", e, { button: BUTTONS[e.button] }));
  });
  on(element, "dblclick", (e) => {
    send(pointer("dblclick", e, { button: BUTTONS[e.button] || 1 }));
  });
  on(element, "pointerenter", (e) => send(pointer("figure_enter", e)));
  on(element, "pointerleave", (e) => {
    flushMove();
    send(pointer("figure_leave", e));
  });
  on(element, "contextmenu", (e) => e.preventDefault());
  on(element, "wheel", (e) => {
    // One notch is one step, as in matplotlib; pixel deltas count 100 pixels a notch.
    const unit = e.deltaMode === 1 ? 3 : e.deltaMode === 2 ? 1 : 100;
    let step = -e.deltaY / unit;
    if (step === 0) return;
    step = Math.max(-1000, Math.min(1000, step));
    if (options.captureScroll && options.captureScroll()) e.preventDefault();
    send(pointer("scroll", e, { step }));
  }, { passive: false });

  const key = (type) => (e) => {
    const name = keyName(e);
    if (name === null) return;
    // Keep the page's own shortcuts (reload, devtools, tab focus) working.
    const pageKey = (e.ctrlKey || e.metaKey) && ["r", "R", "l", "w", "t", "f5"].includes(name.split("+").pop());
    if (!pageKey && name !== "tab") e.preventDefault();
    send({ type, key: name, modifiers: modifiers(e) });
  };
  on(focusTarget, "keydown", key("key_press"));
  on(focusTarget, "keyup", key("key_release"));
  return () => listeners.forEach((off) => off());
}
