// A diff as the product guide draws it: a summary (`sessions: 100 → 150`,
// `added_keys`, `changed_keys`), then the changed paths with their old and
// new values, a page at a time. Unchanged subtrees are never listed.

const PAGE = 100;
const MAX_KEYS_SHOWN = 12;

/** The last segment of a JSON pointer, unescaped (`/app/theme` -> `theme`). */
function lastKey(path) {
  const segment = path.slice(path.lastIndexOf("/") + 1);
  return segment.replace(/~1/g, "/").replace(/~0/g, "~") || "(root)";
}

/**
 * The guide's summary of `changes`: numbers that changed as `key: old → new`,
 * and the keys added, removed and otherwise changed.
 */
export function summarize(changes) {
  const numeric = [];
  const added = [];
  const removed = [];
  const changed = [];
  for (const change of changes) {
    const key = lastKey(change.path);
    if (change.kind === "added") added.push(key);
    else if (change.kind === "removed") removed.push(key);
    else if (typeof change.old === "number" && typeof change.new === "number")
      numeric.push({ key, old: change.old, new: change.new });
    else changed.push(key);
  }
  return { numeric, added, removed, changed };
}

function keyList(keys) {
  const shown = keys.slice(0, MAX_KEYS_SHOWN).map((k) => JSON.stringify(k));
  if (keys.length > MAX_KEYS_SHOWN) shown.push(`… ${keys.length - MAX_KEYS_SHOWN} more`);
  return `[${shown.join(", ")}]`;
}

function short(value) {
  if (value === undefined) return "";
  const text = JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}…` : text;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** Renders `diff` (the API's `{"from", "to", "summary", "changes"}`) into `container`. */
export function renderDiff(container, diff, labels = {}) {
  const changes = diff.changes || [];
  const summary = summarize(changes);
  const lines = [];
  for (const n of summary.numeric.slice(0, MAX_KEYS_SHOWN)) lines.push(`${n.key}: ${n.old} → ${n.new}`);
  if (summary.numeric.length > MAX_KEYS_SHOWN)
    lines.push(`… ${summary.numeric.length - MAX_KEYS_SHOWN} more numbers changed (listed below)`);
  if (summary.added.length) lines.push(`added_keys:    ${keyList(summary.added)}`);
  if (summary.removed.length) lines.push(`removed_keys:  ${keyList(summary.removed)}`);
  if (summary.changed.length) lines.push(`changed_keys:  ${keyList(summary.changed)}`);
  if (!lines.length) lines.push("no change");

  const counts = diff.summary || {};
  const head = el(
    "p",
    { class: "diff-head" },
    `From ${labels.from || "A"} (revision ${diff.from}) to ${labels.to || "B"} (revision ${diff.to}): `,
    el("span", { class: "added" }, `${counts.added || 0} added`),
    ", ",
    el("span", { class: "changed" }, `${counts.changed || 0} changed`),
    ", ",
    el("span", { class: "removed" }, `${counts.removed || 0} removed`),
  );
  const box = el("pre", { class: "diff-summary", "aria-label": "Diff summary" }, lines.join("\n"));
  const table = el("table", { class: "changes" });
  const pager = el("nav", { class: "pager", "aria-label": "Changed paths pages" });
  container.replaceChildren(head, box);
  if (!changes.length) return;
  container.append(
    el("p", { class: "hint" }, "Only changed paths are listed; unchanged keys stay folded."),
    table,
    pager,
  );

  let start = 0;
  const show = () => {
    const end = Math.min(changes.length, start + PAGE);
    const body = el("tbody");
    for (let i = start; i < end; i++) {
      const c = changes[i];
      body.append(
        el(
          "tr",
          { class: c.kind },
          el("td", { class: "kind" }, c.kind),
          el("td", { class: "path" }, el("code", {}, c.path || "/")),
          el("td", { class: "old" }, short(c.old)),
          el("td", { class: "arrow", "aria-hidden": "true" }, c.kind === "changed" ? "→" : ""),
          el("td", { class: "new" }, short(c.new)),
        ),
      );
    }
    table.replaceChildren(
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col" }, "change"),
          el("th", { scope: "col" }, "path"),
          el("th", { scope: "col" }, "old (A)"),
          el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "to")),
          el("th", { scope: "col" }, "new (B)"),
        ),
      ),
      body,
    );
    const prev = el("button", { type: "button" }, "← Previous changes");
    const next = el("button", { type: "button" }, "Next changes →");
    prev.disabled = start === 0;
    next.disabled = end >= changes.length;
    prev.addEventListener("click", () => {
      start = Math.max(0, start - PAGE);
      show();
    });
    next.addEventListener("click", () => {
      start += PAGE;
      show();
    });
    const range = el("span", { class: "range" }, `${start + 1}–${end} of ${changes.length}`);
    pager.replaceChildren(prev, range, next);
  };
  show();
}
