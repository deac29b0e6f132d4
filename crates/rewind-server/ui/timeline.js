// The timeline track: the history window as ticks on a line (evenly spaced
// or proportional to time), snapshot markers above it by kind, transactions
// as bands with their checkpoints, and rollbacks as arcs below it back to
// the revision they restored: history is only ever appended to.
//
// Cost: a render is O(revisions) DOM-free string building plus one SVG
// path per tick kind, so a 1,000-revision window is a handful of elements;
// scrubbing only moves the cursor.

const NS = "http://www.w3.org/2000/svg";
const HEIGHT = 196;
const PAD = 28;
const TRACK_Y = 112;
const MARKER_Y = 84;

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function time(at) {
  return new Date(at).getTime();
}

/** `12:00:01.250`, local time. */
export function clock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** One line saying what made a revision. */
export function describeCause(cause) {
  if (!cause) return "";
  switch (cause.kind) {
    case "initial":
      return "tenant created";
    case "change":
      return "change";
    case "transaction_step":
      return `transaction ${cause.transaction}, step '${cause.step}'`;
    case "rollback": {
      const r = cause.restored || {};
      const what =
        r.kind === "checkpoint"
          ? `checkpoint '${r.name}' of transaction ${r.transaction}`
          : r.name
            ? `${r.kind} snapshot '${r.name}'`
            : `revision ${r.revision}`;
      return `rollback (${cause.target}) to ${what} = revision ${r.revision}, from revision ${cause.from}`;
    }
    default: {
      const rest = Object.entries(cause)
        .filter(([k]) => k !== "kind")
        .map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`)
        .join(", ");
      return rest ? `${cause.kind} (${rest})` : cause.kind;
    }
  }
}

export class Timeline {
  /**
   * `root` becomes the track (a focusable slider). `onScrub(revision,
   * {final, at})` reports a selection made by dragging or keys (`final` once
   * the pointer is released); `onPick({revision, snapshot, checkpoint})` a
   * click on a snapshot or checkpoint (`{transaction, name}`) marker.
   */
  constructor(root, { onScrub, onPick }) {
    this.root = root;
    this.onScrub = onScrub;
    this.onPick = onPick;
    this.revisions = [];
    this.snapshots = [];
    this.mode = "even";
    this.selected = null;
    this.cursorAt = null;
    this.xs = [];
    this.width = 0;
    this.dragging = false;
    this.pendingX = null;
    root.setAttribute("role", "slider");
    root.tabIndex = 0;
    root.addEventListener("pointerdown", (e) => this.pointerDown(e));
    root.addEventListener("pointermove", (e) => this.pointerMove(e));
    root.addEventListener("pointerup", (e) => this.pointerUp(e));
    root.addEventListener("pointercancel", () => (this.dragging = false));
    root.addEventListener("keydown", (e) => this.key(e));
    new ResizeObserver(() => {
      if (this.root.clientWidth !== this.width) this.render();
    }).observe(root);
  }

  /** `revisions` oldest first, as the history's entries. */
  setData(revisions, snapshots) {
    this.revisions = revisions;
    this.snapshots = snapshots;
    this.index = new Map(revisions.map((r, i) => [r.revision, i]));
    this.render();
  }

  setMode(mode) {
    this.mode = mode;
    this.render();
  }

  /** Moves the cursor to `revision` (at time `at` in proportional mode). */
  setSelected(revision, at = null) {
    this.selected = revision;
    this.cursorAt = at;
    this.moveCursor();
  }

  layout() {
    const n = this.revisions.length;
    const width = Math.max(320, this.root.clientWidth || 800);
    this.width = width;
    const span = width - 2 * PAD;
    const t0 = n ? time(this.revisions[0].at) : 0;
    const t1 = n ? time(this.revisions[n - 1].at) : 0;
    this.t0 = t0;
    this.t1 = t1;
    const proportional = this.mode === "time" && t1 > t0;
    this.xs = this.revisions.map((r, i) =>
      proportional ? PAD + ((time(r.at) - t0) / (t1 - t0)) * span : PAD + (n > 1 ? (i / (n - 1)) * span : span / 2),
    );
  }

  xOf(revision) {
    const i = this.index.get(revision);
    return i === undefined ? null : this.xs[i];
  }

  render() {
    this.layout();
    const { revisions, xs, width } = this;
    const root = svg("svg", {
      width,
      height: HEIGHT,
      viewBox: `0 0 ${width} ${HEIGHT}`,
      class: "track-svg",
      "aria-hidden": "true",
    });
    const defs = svg("defs");
    const arrow = svg("marker", {
      id: "arc-head",
      viewBox: "0 0 10 10",
      refX: 5,
      refY: 5,
      markerWidth: 7,
      markerHeight: 7,
      orient: "auto-start-reverse",
    });
    arrow.append(svg("path", { d: "M0 0 L10 5 L0 10 z", class: "arc-head" }));
    defs.append(arrow);
    root.append(defs);
    root.append(svg("line", { x1: PAD, x2: width - PAD, y1: TRACK_Y, y2: TRACK_Y, class: "axis" }));

    // Transactions: a band under their steps, red when it was rolled back.
    const transactions = new Map();
    revisions.forEach((r, i) => {
      if (r.cause && r.cause.kind === "transaction_step") {
        const t = transactions.get(r.cause.transaction) || { first: i, last: i, failed: null };
        t.last = i;
        transactions.set(r.cause.transaction, t);
      }
    });
    revisions.forEach((r, i) => {
      const c = r.cause || {};
      if (c.kind === "rollback" && c.target === "checkpoint" && c.restored) {
        const t = transactions.get(c.restored.transaction);
        if (t && i === t.last + 1) {
          t.failed = c.restored;
          t.last = i;
        }
      }
    });
    for (const [id, t] of transactions) {
      const x1 = xs[t.first] - 5;
      const x2 = xs[t.last] + 5;
      const band = svg("rect", {
        x: x1,
        y: TRACK_Y - 14,
        width: Math.max(10, x2 - x1),
        height: 28,
        rx: 4,
        class: t.failed ? "tx-band failed" : "tx-band",
      });
      band.append(
        svg(
          "title",
          {},
          t.failed
            ? `transaction ${id} failed: rolled back to checkpoint '${t.failed.name}' (revision ${t.failed.revision})`
            : `transaction ${id}`,
        ),
      );
      root.append(band);
      root.append(
        svg(
          "text",
          { x: x1, y: TRACK_Y + 26, class: t.failed ? "tx-label failed" : "tx-label" },
          t.failed ? `tx ${id} failed ⟲` : `tx ${id}`,
        ),
      );
    }

    // Ticks, one path per kind.
    const paths = {};
    revisions.forEach((r, i) => {
      const kind = (r.cause && r.cause.kind) || "change";
      const cls = ["change", "rollback", "transaction_step", "initial"].includes(kind) ? kind : "other";
      paths[cls] = (paths[cls] || "") + `M${xs[i].toFixed(1)} ${TRACK_Y - 8}V${TRACK_Y + 8}`;
    });
    for (const [cls, d] of Object.entries(paths)) root.append(svg("path", { d, class: `tick ${cls}` }));

    // Rollbacks: arcs from the new revision back to the one it restored.
    revisions.forEach((r, i) => {
      const c = r.cause || {};
      if (c.kind !== "rollback" || !c.restored) return;
      const from = xs[i];
      const target = this.xOf(c.restored.revision);
      const to = target === null ? PAD : target;
      const depth = Math.min(60, 14 + Math.abs(from - to) / 4);
      const arc = svg("path", {
        d: `M${from} ${TRACK_Y + 8} Q${(from + to) / 2} ${TRACK_Y + 8 + depth * 2} ${to} ${TRACK_Y + 8}`,
        class: "arc",
        "marker-end": "url(#arc-head)",
        "data-rollback": r.revision,
      });
      arc.append(svg("title", {}, `revision ${r.revision}: ${describeCause(c)}`));
      root.append(arc);
    });

    // Markers above the track, stacked when several share a revision.
    const stack = new Map();
    const marker = (revision, kind, name, title, isProtected, transaction) => {
      const x = this.xOf(revision);
      if (x === null) return;
      const level = stack.get(revision) || 0;
      stack.set(revision, level + 1);
      const y = MARKER_Y - level * 17;
      const g = svg("g", {
        class: `marker ${kind}${isProtected ? " protected" : ""}`,
        transform: `translate(${x} ${y})`,
        "data-snapshot": name,
        "data-kind": kind,
        "data-revision": revision,
      });
      if (transaction !== undefined) g.dataset.transaction = transaction;
      let shape;
      if (kind === "named") shape = svg("path", { d: "M-1 7V-7L7 -3.5L-1 0", class: "shape" });
      else if (kind === "checkpoint") shape = svg("path", { d: "M0 -6L6 0L0 6L-6 0Z", class: "shape" });
      else shape = svg("circle", { r: 4.5, class: "shape" });
      g.append(shape);
      if (isProtected) g.append(svg("circle", { r: 8.5, class: "lock-ring" }));
      if (kind === "named" && level === 0)
        g.append(svg("text", { x: 6, y: -10, class: "marker-label", transform: "rotate(-28)" }, name.slice(0, 18)));
      g.append(svg("title", {}, title));
      // Last, so on top: the square a click or tap lands on.
      g.append(svg("rect", { x: -8, y: -8, width: 16, height: 16, class: "hit" }));
      root.append(g);
    };
    revisions.forEach((r) => {
      const c = r.cause || {};
      if (c.kind === "transaction_step")
        marker(
          r.revision,
          "checkpoint",
          c.step,
          `checkpoint '${c.step}' of transaction ${c.transaction} (revision ${r.revision})`,
          false,
          c.transaction,
        );
    });
    for (const s of this.snapshots) {
      const what = s.kind === "auto" ? `auto snapshot '${s.name}'${s.trigger ? ` (${s.trigger})` : ""}` : `${s.kind} snapshot '${s.name}'`;
      marker(s.revision, s.kind, s.name, `${what} of revision ${s.revision}${s.protected ? ", protected" : ""}`, s.protected);
    }

    // Axis labels.
    if (revisions.length) {
      const first = revisions[0];
      const last = revisions[revisions.length - 1];
      const label = (r) => (this.mode === "time" ? `r${r.revision} ${clock(time(r.at))}` : `r${r.revision}`);
      root.append(svg("text", { x: PAD, y: HEIGHT - 6, class: "axis-label" }, label(first)));
      root.append(svg("text", { x: width - PAD, y: HEIGHT - 6, class: "axis-label end" }, `${label(last)} (head)`));
    }

    // The cursor.
    this.cursor = svg("g", { class: "cursor" });
    this.cursorLine = svg("line", { y1: 8, y2: TRACK_Y + 20, class: "cursor-line" });
    this.cursorKnob = svg("circle", { cy: TRACK_Y, r: 6, class: "cursor-knob" });
    this.cursorText = svg("text", { y: 14, class: "cursor-text" });
    this.cursor.append(this.cursorLine, this.cursorKnob, this.cursorText);
    root.append(this.cursor);
    this.root.replaceChildren(root);
    this.moveCursor();
  }

  moveCursor() {
    if (!this.cursor) return;
    const n = this.revisions.length;
    const head = n ? this.revisions[n - 1].revision : 0;
    this.root.setAttribute("aria-valuemin", n ? this.revisions[0].revision : 0);
    this.root.setAttribute("aria-valuemax", head);
    const x = this.selected === null ? null : this.xOf(this.selected);
    if (x === null) {
      this.cursor.setAttribute("visibility", "hidden");
      return;
    }
    let cx = x;
    let text = `r${this.selected}`;
    if (this.cursorAt !== null && this.mode === "time" && this.t1 > this.t0) {
      cx = PAD + ((this.cursorAt - this.t0) / (this.t1 - this.t0)) * (this.width - 2 * PAD);
      text = `as of ${clock(this.cursorAt)} → r${this.selected}`;
    }
    this.cursor.setAttribute("visibility", "visible");
    this.cursor.setAttribute("transform", `translate(${cx.toFixed(1)} 0)`);
    this.cursorText.textContent = text;
    const right = cx > this.width - 160;
    this.cursorText.setAttribute("text-anchor", right ? "end" : "start");
    this.cursorText.setAttribute("x", right ? -8 : 8);
    const r = this.revisions[this.index.get(this.selected)];
    this.root.setAttribute("aria-valuenow", this.selected);
    this.root.setAttribute(
      "aria-valuetext",
      `revision ${this.selected}${this.selected === head ? " (head)" : ""}${r ? `, ${clock(time(r.at))}, ${describeCause(r.cause)}` : ""}`,
    );
  }

  /** The revision at track position `x`, and the time there in proportional mode. */
  at(x) {
    const { xs, revisions } = this;
    if (!xs.length) return null;
    // The last tick at or before x (a tick within 4px counts as hit).
    let lo = 0;
    let hi = xs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (xs[mid] <= x + 4) lo = mid;
      else hi = mid - 1;
    }
    if (this.mode === "time" && this.t1 > this.t0) {
      const t = this.t0 + ((x - PAD) / (this.width - 2 * PAD)) * (this.t1 - this.t0);
      const clamped = Math.min(this.t1, Math.max(this.t0, t));
      return { revision: revisions[lo].revision, at: clamped };
    }
    // Evenly spaced: the nearest tick.
    if (lo + 1 < xs.length && Math.abs(xs[lo + 1] - x) < Math.abs(xs[lo] - x)) lo += 1;
    return { revision: revisions[lo].revision, at: null };
  }

  localX(event) {
    return event.clientX - this.root.getBoundingClientRect().left;
  }

  pointerDown(event) {
    const hit = event.target.closest && event.target.closest("[data-snapshot]");
    if (hit) {
      event.preventDefault();
      this.root.focus();
      const checkpoint = hit.dataset.kind === "checkpoint";
      this.onPick({
        revision: Number(hit.dataset.revision),
        snapshot: checkpoint ? null : hit.dataset.snapshot,
        checkpoint: checkpoint ? { transaction: Number(hit.dataset.transaction), name: hit.dataset.snapshot } : null,
      });
      return;
    }
    this.dragging = true;
    this.root.setPointerCapture(event.pointerId);
    this.root.focus();
    this.scrubTo(this.localX(event), false);
  }

  pointerMove(event) {
    if (!this.dragging) return;
    // At most one scrub per frame, however fast the pointer moves.
    const first = this.pendingX === null;
    this.pendingX = this.localX(event);
    if (first)
      requestAnimationFrame(() => {
        const x = this.pendingX;
        this.pendingX = null;
        if (x !== null) this.scrubTo(x, false);
      });
  }

  pointerUp(event) {
    if (!this.dragging) return;
    this.dragging = false;
    this.pendingX = null;
    this.scrubTo(this.localX(event), true);
  }

  scrubTo(x, final) {
    const found = this.at(x);
    if (!found) return;
    this.setSelected(found.revision, found.at);
    this.onScrub(found.revision, { final, at: found.at });
  }

  key(event) {
    const n = this.revisions.length;
    if (!n) return;
    let i = this.index.get(this.selected);
    if (i === undefined) i = n - 1;
    const marks = [...new Set(this.snapshots.map((s) => this.index.get(s.revision)).filter((v) => v !== undefined))].sort(
      (a, b) => a - b,
    );
    let next;
    switch (event.key) {
      case "ArrowLeft":
      case "ArrowDown":
        next = event.shiftKey ? [...marks].reverse().find((m) => m < i) : i - 1;
        break;
      case "ArrowRight":
      case "ArrowUp":
        next = event.shiftKey ? marks.find((m) => m > i) : i + 1;
        break;
      case "PageDown":
        next = i - 10;
        break;
      case "PageUp":
        next = i + 10;
        break;
      case "Home":
        next = 0;
        break;
      case "End":
        next = n - 1;
        break;
      default:
        return;
    }
    event.preventDefault();
    if (next === undefined) return;
    next = Math.max(0, Math.min(n - 1, next));
    const revision = this.revisions[next].revision;
    this.setSelected(revision, null);
    this.onScrub(revision, { final: false, at: null });
  }
}
