// The one DOM helper the viewer, its timeline bar and the notebook widget share.

/** A new element: its tag, class name, parent and text, each optional but the tag. */
export function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
