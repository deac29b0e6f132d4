// The client of rewind's public HTTP API: the same routes, bearer token and
// error bodies (`{"error": {"code", "message"}}`) as any other client.

const TOKEN_KEY = "rewind.token";

/** The token kept in this tab's session storage ("" when none). */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A refusal of the API (or of the network, with status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** What to tell a user about `error`: 401 and 403 said as such. */
export function describe(error) {
  if (!(error instanceof ApiError)) return String(error);
  switch (error.status) {
    case 0:
      return `The server did not answer: ${error.message}`;
    case 401:
      return `401 Unauthorized: ${error.message}. Enter a valid token above.`;
    case 403:
      return `403 Forbidden: ${error.message}. This token cannot see it.`;
    default:
      return `${error.status} ${error.code}: ${error.message}`;
  }
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const bearer = token();
  if (bearer) out.Authorization = `Bearer ${bearer}`;
  return out;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function request(method, path, { params, body, signal } = {}) {
  let response;
  try {
    response = await fetch(path + query(params), {
      method,
      signal,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", error.message);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // An empty or non-JSON body: the status says enough.
  }
  if (!response.ok) {
    const detail = (data && data.error) || {};
    throw new ApiError(response.status, detail.code || "error", detail.message || response.statusText);
  }
  return data;
}

const tenantPath = (id) => `/v1/tenants/${encodeURIComponent(id)}`;

/** A reference as `GET .../state` takes it: `{revision}`, `{snapshot}` or `{as_of}`. */
function stateParams(ref) {
  if (ref === "head" || ref === undefined) return {};
  if (typeof ref === "number") return { revision: ref };
  const text = String(ref);
  if (/^\d+$/.test(text)) return { revision: text };
  if (text.startsWith("snapshot:")) return { snapshot: text.slice(9) };
  if (text.startsWith("time:")) return { as_of: text.slice(5) };
  return {};
}

export const api = {
  /** `{"tenants": [{"tenant", "revision"?}], "next"?}` (admin). */
  tenants: (limit, after) => request("GET", "/v1/tenants", { params: { limit, after } }),
  tenant: (id) => request("GET", tenantPath(id)),
  /** The document at `ref` (`head`, a revision, `snapshot:NAME`, `time:RFC3339`). */
  state: (id, ref, signal) =>
    request("GET", `${tenantPath(id)}/state`, { params: stateParams(ref), signal }),
  history: (id, limit) => request("GET", `${tenantPath(id)}/history`, { params: { limit } }),
  snapshots: (id) => request("GET", `${tenantPath(id)}/snapshots`),
  createSnapshot: (id, name, isProtected) =>
    request("POST", `${tenantPath(id)}/snapshots`, {
      body: { name, protected: isProtected, reason: "taken from the timeline UI" },
    }),
  protect: (id, name) =>
    request("POST", `${tenantPath(id)}/snapshots/${encodeURIComponent(name)}/protect`),
  diff: (id, from, to, signal) =>
    request("GET", `${tenantPath(id)}/diff`, { params: { from, to }, signal }),
  /** `target` as the API spells it: `{"snapshot": NAME}`, `{"revision": N}`, ... */
  rollback: (id, target, dryRun, reason) =>
    request("POST", `${tenantPath(id)}/rollback`, {
      body: { to: target, dry_run: dryRun, ...(reason ? { reason } : {}) },
    }),
};

/**
 * Follows `GET .../watch` (server-sent events) with `fetch`, since
 * `EventSource` cannot send the bearer token. Reconnects with
 * `Last-Event-ID` so nothing is missed. `gap` and `reset` (the resume
 * point is beyond the head: the tenant was created again) go to `onGap`
 * and `onReset`: re-read the tenant. A `deleted` or `failed` event ends
 * the watch for good, reported through `onStatus("error", ...)`. Returns
 * `{close()}`.
 */
export function watch(id, { onRevision, onGap, onReset, onStatus, lastId }) {
  let controller = null;
  let closed = false;
  let last = lastId;
  // Set by a `deleted` or `failed` event: why the stream will not resume.
  let ended = null;

  async function connect() {
    controller = new AbortController();
    const extra = { Accept: "text/event-stream" };
    if (last !== undefined && last !== null) extra["Last-Event-ID"] = String(last);
    try {
      const response = await fetch(`${tenantPath(id)}/watch`, {
        headers: headers(extra),
        signal: controller.signal,
      });
      if (!response.ok) {
        let message = response.statusText;
        try {
          message = (await response.json()).error.message;
        } catch {
          // keep the status text
        }
        onStatus("error", new ApiError(response.status, "watch", message));
        if (response.status === 401 || response.status === 403 || response.status === 404) return;
      } else {
        onStatus("live");
        await read(response.body.getReader());
        if (ended) {
          closed = true;
          onStatus("error", ended);
          return;
        }
      }
    } catch (error) {
      if (closed) return;
      onStatus("error", new ApiError(0, "watch", error.message));
    }
    if (!closed) {
      onStatus("reconnecting");
      setTimeout(connect, 1000);
    }
  }

  async function read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    let event = { type: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (event.data.length) dispatch(event);
          event = { type: "message", data: [], id: null };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event.type = text;
          else if (field === "data") event.data.push(text);
          else if (field === "id") event.id = text;
        }
      }
    }
  }

  function dispatch(event) {
    if (event.id !== null) last = event.id;
    const data = JSON.parse(event.data.join("\n"));
    if (event.type === "revision") onRevision(data);
    else if (event.type === "gap") onGap && onGap(data);
    else if (event.type === "reset") onReset && onReset(data);
    else if (event.type === "deleted")
      ended = new ApiError(404, "tenant_not_found", `tenant '${data.tenant}' was deleted`);
    else if (event.type === "failed")
      ended = new ApiError(503, "unavailable", `tenant '${data.tenant}' failed and serves no more`);
  }

  connect();
  return {
    close() {
      closed = true;
      if (controller) controller.abort();
    },
  };
}
