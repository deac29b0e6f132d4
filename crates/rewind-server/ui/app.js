// The timeline UI: routes (`/ui`, `/ui/tenants/{id}?revision=N&from=REF&to=REF`),
// the tenants view and the tenant view. Everything it shows comes from the
// public HTTP API (api.js); the address holds what a shared link must
// reopen, and back/forward replay it.

import { api, ApiError, describe, setToken, token, watch } from "./api.js";
import { Timeline, clock, describeCause } from "./timeline.js";
import { renderTree } from "./tree.js";
import { renderDiff } from "./diff.js";

const HISTORY_WINDOW = 1000;
const TENANTS_PAGE = 50;
/** How long scrubbing must rest before the state under the cursor is fetched. */
const SCRUB_REST_MS = 90;
const STATE_CACHE = 8;

const main = document.getElementById("main");
const statusLine = document.getElementById("status");

/** Measurements the browser tests read (and anyone curious, from the console). */
window.__rewind = { trees: [], diffs: [] };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function setStatus(content, kind = "info") {
  statusLine.className = `status ${kind}`;
  statusLine.replaceChildren(...(Array.isArray(content) ? content : [content]));
}

function showError(error) {
  if (error && error.name === "AbortError") return;
  setStatus(describe(error), error instanceof ApiError && (error.status === 401 || error.status === 403) ? "auth" : "error");
}

// --- routing ------------------------------------------------------------

let current = null; // the mounted view: {kind, id?, close(), apply?(params)}

function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route();
}

function route() {
  const path = location.pathname.replace(/\/+$/, "");
  const params = new URLSearchParams(location.search);
  const match = path.match(/^\/ui\/tenants\/([^/]+)$/);
  if (match) {
    const id = decodeURIComponent(match[1]);
    if (current && current.kind === "tenant" && current.id === id) {
      current.apply(params);
      return;
    }
    mount(() => tenantView(id, params));
  } else if (path === "/ui" || path === "") {
    if (current && current.kind === "tenants") return;
    mount(() => tenantsView());
  } else {
    mount(() => {
      main.replaceChildren(el("h1", {}, "Not found"), el("p", {}, el("a", { href: "/ui", "data-link": true }, "All tenants")));
      return { kind: "none", close() {} };
    });
  }
}

function mount(build) {
  if (current) current.close();
  setStatus("");
  current = build();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[data-link]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", route);

// --- the token ----------------------------------------------------------

const tokenInput = document.getElementById("token");
tokenInput.value = token();
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  current = (current && current.close(), null);
  route();
  setStatus(token() ? "Token saved for this tab." : "No token: requests are sent without one.");
});
document.getElementById("token-clear").addEventListener("click", () => {
  tokenInput.value = "";
  setToken("");
  current = (current && current.close(), null);
  route();
  setStatus("Token cleared.");
});

// --- the tenants view ---------------------------------------------------

function tenantsView() {
  document.title = "Tenants · rewind";
  const search = el("input", { id: "tenant-search", type: "search", placeholder: "filter or type an id", autocomplete: "off" });
  const rows = el("tbody");
  const note = el("p", { class: "hint", role: "status" });
  const prev = el("button", { type: "button" }, "← Previous page");
  const next = el("button", { type: "button" }, "Next page →");
  const pageLabel = el("span", { class: "range" });
  const cursors = [undefined];
  let page = 0;
  let tenants = [];
  let nextCursor = null;

  const open = (id) => navigate(`/ui/tenants/${encodeURIComponent(id)}`);
  const form = el(
    "form",
    {
      role: "search",
      class: "row",
      onsubmit: (event) => {
        event.preventDefault();
        const text = search.value.trim();
        if (text) open(text);
      },
    },
    el("label", { for: "tenant-search" }, "Search tenants"),
    search,
    el("button", { type: "submit" }, "Open tenant"),
  );

  const draw = () => {
    const filter = search.value.trim().toLowerCase();
    const shown = tenants.filter((t) => t.tenant.toLowerCase().includes(filter));
    rows.replaceChildren(
      ...shown.map((t) =>
        el(
          "tr",
          {},
          el("td", {}, el("a", { href: `/ui/tenants/${encodeURIComponent(t.tenant)}`, "data-link": true }, t.tenant)),
          el("td", { class: "num" }, t.revision === undefined ? "(passivated)" : `r${t.revision}`),
        ),
      ),
    );
    note.textContent = filter
      ? `${shown.length} of ${tenants.length} tenants on this page match "${filter}"; Enter opens the tenant with exactly that id.`
      : `${tenants.length} tenants on this page.`;
    pageLabel.textContent = `Page ${page + 1}`;
    prev.disabled = page === 0;
    next.disabled = !nextCursor;
  };

  const load = async () => {
    try {
      const body = await api.tenants(TENANTS_PAGE, cursors[page]);
      tenants = body.tenants;
      nextCursor = body.next || null;
      draw();
    } catch (error) {
      tenants = [];
      nextCursor = null;
      draw();
      showError(error);
      if (error.status === 403 || error.status === 401)
        note.textContent =
          "Listing tenants needs the admin token. A tenant's token sees only its tenant: type its id above and press Enter.";
    }
  };
  search.addEventListener("input", draw);
  prev.addEventListener("click", () => {
    page -= 1;
    load();
  });
  next.addEventListener("click", () => {
    cursors[page + 1] = nextCursor;
    page += 1;
    load();
  });

  main.replaceChildren(
    el("h1", {}, "Tenants"),
    form,
    el(
      "table",
      { class: "tenants" },
      el("caption", { class: "visually-hidden" }, "Tenants and their head revision"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Tenant"), el("th", { scope: "col" }, "Revision"))),
      rows,
    ),
    note,
    el("nav", { class: "pager", "aria-label": "Tenant pages" }, prev, pageLabel, next),
  );
  load();
  return { kind: "tenants", close() {} };
}

// --- the tenant view ----------------------------------------------------

function tenantView(id, params) {
  document.title = `${id} · rewind`;
  const v = {
    id,
    revisions: [],
    snapshots: [],
    head: null,
    selected: null,
    follow: true,
    snapshot: null,
    checkpoint: null,
    at: null,
    from: null,
    to: null,
    states: new Map(),
    stateAbort: null,
    diffAbort: null,
    timer: null,
    selectedSince: 0,
    watcher: null,
    closed: false,
  };

  // The page.
  const headLabel = el("span", { class: "badge", id: "head" });
  const live = el("span", { class: "live", id: "live", role: "status" }, "connecting…");
  const spacing = localStorage.getItem("rewind.spacing") || "even";
  const radio = (value, text) =>
    el(
      "label",
      {},
      el("input", {
        type: "radio",
        name: "spacing",
        value,
        checked: spacing === value,
        onchange: () => {
          localStorage.setItem("rewind.spacing", value);
          timeline.setMode(value);
        },
      }),
      ` ${text}`,
    );
  const track = el("div", { id: "track", class: "track", "aria-label": "Timeline of revisions" });
  const info = el("dl", { id: "revision-info", class: "facts" });
  const revisionTitle = el("h2", { id: "revision-title" }, "Revision");
  const tree = el("div", { id: "tree", class: "tree-box", "aria-labelledby": "revision-title" });
  const fromInput = el("input", { id: "diff-from", autocomplete: "off", spellcheck: "false" });
  const toInput = el("input", { id: "diff-to", autocomplete: "off", spellcheck: "false" });
  const diffBox = el("div", { id: "diff", "aria-live": "polite" });
  const snapName = el("input", { id: "snapshot-name", required: true, pattern: "[A-Za-z0-9._\\-]+", autocomplete: "off" });
  const snapProtect = el("input", { id: "snapshot-protect", type: "checkbox" });
  const target = el("select", { id: "rollback-target" });
  const undoBox = el("div", { id: "undo", role: "status" });
  const snapshotRows = el("tbody");

  const selectedRef = () => (v.snapshot ? `snapshot:${v.snapshot}` : String(v.selected));

  main.replaceChildren(
    el(
      "div",
      { class: "tenant-head" },
      el("h1", {}, el("a", { href: "/ui", "data-link": true, class: "up" }, "Tenants"), " / ", id),
      headLabel,
      live,
    ),
    el(
      "section",
      { class: "timeline", "aria-labelledby": "timeline-title" },
      el(
        "div",
        { class: "row" },
        el("h2", { id: "timeline-title" }, "Timeline"),
        el("fieldset", { class: "inline" }, el("legend", {}, "Spacing"), radio("even", "even"), radio("time", "proportional to time")),
        el("button", { type: "button", id: "to-head", onclick: () => select(v.head, { push: true, follow: true }) }, "Go to head"),
      ),
      track,
      el(
        "p",
        { class: "legend hint" },
        el("span", { class: "key-named" }, "▶ named"),
        el("span", { class: "key-auto" }, "● auto"),
        el("span", { class: "key-checkpoint" }, "◆ checkpoint"),
        el("span", { class: "key-protected" }, "◯ protected"),
        el("span", { class: "key-arc" }, "⌒ rollback (arc back to what it restored)"),
        el("span", { class: "key-failed" }, "▭ failed transaction"),
        " · Drag or use ←/→ (Shift: snapshots, PageUp/PageDown: 10, Home/End).",
      ),
    ),
    el(
      "div",
      { class: "columns" },
      el("section", { class: "panel", "aria-labelledby": "revision-title" }, revisionTitle, info, el("h3", {}, "State"), tree),
      el(
        "section",
        { class: "panel", "aria-labelledby": "diff-title" },
        el("h2", { id: "diff-title" }, "Diff between two points"),
        el(
          "form",
          {
            class: "diff-form",
            onsubmit: (event) => {
              event.preventDefault();
              v.from = fromInput.value.trim() || null;
              v.to = toInput.value.trim() || null;
              pushUrl(false);
              loadDiff();
            },
          },
          el("label", { for: "diff-from" }, "A (from)"),
          fromInput,
          el("button", { type: "button", id: "pick-a", onclick: () => pick("from") }, "A ← selected"),
          el("label", { for: "diff-to" }, "B (to)"),
          toInput,
          el("button", { type: "button", id: "pick-b", onclick: () => pick("to") }, "B ← selected"),
          el("span"),
          el(
            "span",
            { class: "row" },
            el("button", { type: "submit", id: "show-diff" }, "Show diff"),
            el(
            "button",
            {
              type: "button",
              onclick: () => {
                v.from = v.to = null;
                pushUrl(false);
                loadDiff();
              },
            },
            "Reset (selected → head)",
            ),
          ),
        ),
        el("p", { class: "hint" }, "A reference is head, a revision number, snapshot:NAME or time:RFC3339."),
        diffBox,
      ),
    ),
    el(
      "section",
      { class: "panel actions", "aria-labelledby": "actions-title" },
      el("h2", { id: "actions-title" }, "Actions"),
      el(
        "form",
        { class: "row", id: "snapshot-form", onsubmit: (event) => (event.preventDefault(), takeSnapshot()) },
        el("label", { for: "snapshot-name" }, "Snapshot name"),
        snapName,
        el("label", {}, snapProtect, " protect"),
        el("button", { type: "submit" }, "Take named snapshot of head"),
      ),
      el(
        "div",
        { class: "row" },
        el("label", { for: "rollback-target" }, "Roll back to"),
        target,
        el("button", { type: "button", id: "rollback", class: "danger", onclick: () => rollback(targetValue(), targetLabel()) }, "Roll back…"),
      ),
      undoBox,
    ),
    el(
      "section",
      { class: "panel", "aria-labelledby": "snapshots-title" },
      el("h2", { id: "snapshots-title" }, "Snapshots"),
      el(
        "table",
        { class: "snapshots" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ...["Name", "Kind", "Revision", "Taken", "Protected", ""].map((h) => el("th", { scope: "col" }, h)),
          ),
        ),
        snapshotRows,
      ),
    ),
  );

  const timeline = new Timeline(track, {
    onScrub: (revision, { final, at }) =>
      select(revision, { push: final, immediate: final, at, follow: revision === v.head && at === null }),
    onPick: ({ revision, snapshot, checkpoint }) => select(revision, { push: true, immediate: true, snapshot, checkpoint }),
  });
  timeline.mode = spacing;

  // --- selection and the address ---

  function pushUrl(replace) {
    const q = new URLSearchParams();
    if (!v.follow && v.selected !== null) q.set("revision", v.selected);
    if (v.from) q.set("from", v.from);
    if (v.to) q.set("to", v.to);
    const text = q.toString();
    const url = `/ui/tenants/${encodeURIComponent(id)}${text ? `?${text}` : ""}`;
    if (url === location.pathname + location.search) return;
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
  }

  function select(
    revision,
    { push = false, immediate = false, snapshot = null, checkpoint = null, at = null, follow = false, fromUrl = false } = {},
  ) {
    if (revision === null || revision === undefined) return;
    v.selected = revision;
    v.snapshot = snapshot;
    v.checkpoint = checkpoint;
    v.at = at;
    v.follow = follow;
    v.selectedSince = performance.now();
    timeline.setSelected(revision, at);
    drawInfo();
    drawTargets();
    // Scrubbing replaces the address once it rests: browsers throttle
    // history updates made on every pointer move.
    if (!fromUrl && push) pushUrl(false);
    clearTimeout(v.timer);
    const load = () => {
      if (!fromUrl && !push) pushUrl(true);
      loadState();
      if (!v.from || !v.to) loadDiff();
    };
    if (immediate) load();
    else v.timer = setTimeout(load, SCRUB_REST_MS);
  }

  function apply(q) {
    v.from = q.get("from");
    v.to = q.get("to");
    const wanted = q.get("revision");
    if (wanted !== null && /^\d+$/.test(wanted)) select(Number(wanted), { immediate: true, fromUrl: true });
    else select(v.head, { immediate: true, follow: true, fromUrl: true });
    // `select` leaves a diff between two pinned points alone.
    if (v.from && v.to) loadDiff();
  }

  function pick(which) {
    v[which] = selectedRef();
    pushUrl(false);
    loadDiff();
  }

  // --- what the page shows ---

  function entry(revision) {
    return v.revisions.find((r) => r.revision === revision);
  }

  function drawInfo() {
    const r = entry(v.selected);
    revisionTitle.textContent = `Revision ${v.selected}${v.selected === v.head ? " (head)" : ""}`;
    const facts = [];
    const fact = (name, value, cls) => facts.push(el("dt", {}, name), el("dd", { class: cls || "" }, value));
    if (v.at !== null) fact("as of", clock(v.at));
    if (r) {
      fact("at", `${r.at} (${clock(new Date(r.at).getTime())} local)`);
      fact("cause", describeCause(r.cause), "cause");
      fact("author", r.author || "—");
      fact("message", r.message || "—");
    } else fact("at", "outside the history window");
    const here = v.snapshots.filter((s) => s.revision === v.selected);
    if (here.length) fact("snapshots", here.map((s) => `${s.name} (${s.kind}${s.protected ? ", protected" : ""})`).join(", "));
    info.replaceChildren(...facts);
  }

  function drawHead() {
    headLabel.textContent = `head r${v.head}`;
  }

  function targetValue() {
    return target.value;
  }

  function targetLabel() {
    return target.selectedOptions[0] ? target.selectedOptions[0].textContent : "";
  }

  function drawTargets() {
    const options = [el("option", { value: `revision:${v.selected}` }, `revision ${v.selected} (selected)`)];
    for (const s of [...v.snapshots].reverse())
      options.push(el("option", { value: `snapshot:${s.name}` }, `snapshot '${s.name}' (${s.kind}, revision ${s.revision})`));
    // A transaction's checkpoints, while the runtime keeps them.
    for (const r of [...v.revisions].reverse().filter((r) => r.cause && r.cause.kind === "transaction_step").slice(0, 50))
      options.push(
        el(
          "option",
          { value: `checkpoint:${r.cause.transaction}:${r.cause.step}` },
          `checkpoint '${r.cause.step}' of transaction ${r.cause.transaction} (revision ${r.revision})`,
        ),
      );
    target.replaceChildren(...options);
    target.value = v.snapshot
      ? `snapshot:${v.snapshot}`
      : v.checkpoint
        ? `checkpoint:${v.checkpoint.transaction}:${v.checkpoint.name}`
        : `revision:${v.selected}`;
  }

  function drawSnapshots() {
    snapshotRows.replaceChildren(
      ...[...v.snapshots].reverse().map((s) =>
        el(
          "tr",
          { class: s.kind },
          el("td", {}, s.name),
          el("td", {}, s.kind + (s.trigger ? ` (${s.trigger})` : "")),
          el("td", { class: "num" }, `r${s.revision}`),
          el("td", {}, clock(new Date(s.created_at).getTime())),
          el("td", {}, s.protected ? "yes" : "no"),
          el(
            "td",
            {},
            el(
              "button",
              { type: "button", onclick: () => select(s.revision, { push: true, immediate: true, snapshot: s.name }) },
              "Select",
            ),
            s.kind === "named" && !s.protected
              ? el("button", { type: "button", onclick: () => protect(s.name) }, "Protect")
              : null,
          ),
        ),
      ),
    );
  }

  function redraw() {
    timeline.setData(v.revisions, v.snapshots);
    timeline.setSelected(v.selected, v.at);
    drawHead();
    drawInfo();
    drawTargets();
    drawSnapshots();
  }

  async function loadState() {
    const revision = v.selected;
    const since = v.selectedSince;
    if (v.stateAbort) v.stateAbort.abort();
    let state = v.states.get(revision);
    const cached = state !== undefined;
    if (!cached) {
      v.stateAbort = new AbortController();
      tree.setAttribute("aria-busy", "true");
      try {
        state = await api.state(id, revision, v.stateAbort.signal);
      } catch (error) {
        if (error.name !== "AbortError") {
          tree.replaceChildren(el("p", { class: "error", role: "alert" }, describe(error)));
          tree.removeAttribute("aria-busy");
        }
        return;
      }
      v.states.set(revision, state);
      if (v.states.size > STATE_CACHE) v.states.delete(v.states.keys().next().value);
    }
    if (revision !== v.selected) return;
    renderTree(tree, state);
    tree.dataset.revision = revision;
    tree.removeAttribute("aria-busy");
    window.__rewind.trees.push({ revision, ms: performance.now() - since, cached });
  }

  async function loadDiff() {
    const from = v.from || selectedRef();
    const to = v.to || "head";
    fromInput.value = v.from || "";
    toInput.value = v.to || "";
    fromInput.placeholder = `${selectedRef()} (selected)`;
    toInput.placeholder = "head";
    if (v.diffAbort) v.diffAbort.abort();
    v.diffAbort = new AbortController();
    const started = performance.now();
    try {
      const diff = await api.diff(id, from, to, v.diffAbort.signal);
      renderDiff(diffBox, diff, { from, to });
      diffBox.dataset.from = from;
      diffBox.dataset.to = to;
      window.__rewind.diffs.push({ from, to, changes: diff.changes.length, ms: performance.now() - started });
    } catch (error) {
      if (error.name !== "AbortError") diffBox.replaceChildren(el("p", { class: "error", role: "alert" }, describe(error)));
    }
  }

  async function refresh() {
    const [history, snapshots, tenant] = await Promise.all([
      api.history(id, HISTORY_WINDOW),
      api.snapshots(id),
      api.tenant(id),
    ]);
    v.revisions = history.revisions.slice().reverse();
    v.snapshots = snapshots.snapshots;
    v.head = tenant.revision;
  }

  let snapshotTimer = null;
  function refreshSnapshotsSoon() {
    clearTimeout(snapshotTimer);
    snapshotTimer = setTimeout(async () => {
      try {
        v.snapshots = (await api.snapshots(id)).snapshots;
        redraw();
      } catch (error) {
        showError(error);
      }
    }, 150);
  }

  function onRevision(r) {
    if (v.revisions.length && r.revision <= v.revisions[v.revisions.length - 1].revision) return;
    v.revisions.push(r);
    if (v.revisions.length > HISTORY_WINDOW) v.revisions.shift();
    v.head = r.revision;
    const following = v.follow;
    redraw();
    if (following) select(v.head, { immediate: true, follow: true, fromUrl: true });
    else if (!v.to) loadDiff();
    refreshSnapshotsSoon();
  }

  // --- actions ---

  async function takeSnapshot() {
    const name = snapName.value.trim();
    try {
      const s = await api.createSnapshot(id, name, snapProtect.checked);
      setStatus(`Snapshot '${s.name}' taken of revision ${s.revision}${s.protected ? " (protected)" : ""}.`, "ok");
      snapName.value = "";
      v.snapshots = (await api.snapshots(id)).snapshots;
      redraw();
    } catch (error) {
      showError(error);
    }
  }

  async function protect(name) {
    try {
      await api.protect(id, name);
      v.snapshots = (await api.snapshots(id)).snapshots;
      redraw();
      setStatus(`Snapshot '${name}' is protected: never pruned nor deleted.`, "ok");
    } catch (error) {
      showError(error);
    }
  }

  /** `revision:N` / `snapshot:NAME` / `checkpoint:TX:NAME` -> the API's rollback target. */
  function targetOf(value) {
    const [kind, ...rest] = value.split(":");
    const arg = rest.join(":");
    if (kind === "revision") return { revision: Number(arg) };
    if (kind === "checkpoint") return { checkpoint: { transaction: Number(rest[0]), name: rest.slice(1).join(":") } };
    return { snapshot: arg };
  }

  async function rollback(value, label) {
    const to = targetOf(value);
    let preview;
    try {
      preview = await api.rollback(id, to, true);
    } catch (error) {
      showError(error);
      return;
    }
    const ok = await confirmRollback(label, preview);
    if (!ok) {
      setStatus("Rollback cancelled: nothing changed.");
      return;
    }
    try {
      const done = await api.rollback(id, to, false, `rolled back to ${label} from the timeline UI`);
      // The watch brings the revision too; reading the history here makes
      // the track right even if the stream is reconnecting.
      await refresh();
      redraw();
      select(v.head, { push: true, immediate: true, follow: true });
      const undo = done.pre_rollback
        ? { value: `snapshot:${done.pre_rollback.name}`, label: `snapshot '${done.pre_rollback.name}' (before the rollback)` }
        : { value: `revision:${done.revision - 1}`, label: `revision ${done.revision - 1}` };
      const link = el(
        "a",
        { href: "#", id: "undo-link", onclick: (event) => (event.preventDefault(), rollback(undo.value, undo.label)) },
        "Undo (roll the rollback back)",
      );
      undoBox.replaceChildren(`Rolled back to ${label}: revision ${done.revision} restores revision ${done.restored.revision}. `, link);
      setStatus(`Rolled back to ${label} as revision ${done.revision}.`, "ok");
    } catch (error) {
      showError(error);
    }
  }

  function confirmRollback(label, preview) {
    const dialog = document.getElementById("confirm");
    const body = document.getElementById("confirm-body");
    const title = document.getElementById("confirm-title");
    title.textContent = `Roll back to ${label}?`;
    const diffPreview = el("div", { id: "confirm-diff" });
    renderDiff(diffPreview, { ...preview.diff, from: preview.revision, to: preview.restored.revision }, { from: "head", to: label });
    body.replaceChildren(
      el(
        "p",
        {},
        `A new revision ${preview.revision + 1} will hold the state of revision ${preview.restored.revision}; the history is kept, and the current head is saved in a pre-rollback snapshot. Dry run:`,
      ),
      diffPreview,
    );
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    });
  }

  // --- start ---

  (async () => {
    try {
      await refresh();
    } catch (error) {
      main.replaceChildren(
        el("h1", {}, el("a", { href: "/ui", "data-link": true, class: "up" }, "Tenants"), " / ", id),
        el("p", { class: "error big", role: "alert" }, describe(error)),
      );
      showError(error);
      return;
    }
    if (v.closed) return;
    redraw();
    apply(params);
    v.watcher = watch(id, {
      lastId: v.head,
      onRevision,
      onGap: () => refresh().then(redraw),
      onReset: () => refresh().then(redraw),
      onStatus: (state, error) => {
        live.className = `live ${state}`;
        live.textContent = state === "live" ? "● live" : state === "reconnecting" ? "reconnecting…" : describe(error);
      },
    });
  })();

  return {
    kind: "tenant",
    id,
    apply,
    close() {
      v.closed = true;
      clearTimeout(v.timer);
      if (v.watcher) v.watcher.close();
      if (v.stateAbort) v.stateAbort.abort();
      if (v.diffAbort) v.diffAbort.abort();
    },
  };
}

route();
