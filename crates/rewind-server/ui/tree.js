// A collapsible JSON tree that builds nodes only when they are opened, and
// at most PAGE children at a time: a 100k-key object costs PAGE rows until
// the user asks for more.

const PAGE = 200;

/** Shows `value` in `container`, its top level open. */
export function renderTree(container, value) {
  const root = document.createElement("ul");
  root.className = "tree";
  root.setAttribute("role", "tree");
  root.append(item(null, value, true));
  container.replaceChildren(root);
}

function isBranch(value) {
  return value !== null && typeof value === "object";
}

function preview(value) {
  if (Array.isArray(value)) return `[${value.length} item${value.length === 1 ? "" : "s"}]`;
  const count = Object.keys(value).length;
  return `{${count} key${count === 1 ? "" : "s"}}`;
}

function scalar(value) {
  const span = document.createElement("span");
  span.className = `v v-${value === null ? "null" : typeof value}`;
  span.textContent = JSON.stringify(value);
  return span;
}

function label(key) {
  const span = document.createElement("span");
  span.className = "k";
  span.textContent = key;
  return span;
}

function item(key, value, open) {
  const li = document.createElement("li");
  li.setAttribute("role", "treeitem");
  if (!isBranch(value)) {
    if (key !== null) li.append(label(key), ": ");
    li.append(scalar(value));
    return li;
  }
  const toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "toggle";
  toggle.setAttribute("aria-expanded", "false");
  toggle.append(key === null ? "state" : label(key), " ");
  const summary = document.createElement("span");
  summary.className = "preview";
  summary.textContent = preview(value);
  toggle.append(summary);
  li.append(toggle);
  let children = null;
  const setOpen = (next) => {
    toggle.setAttribute("aria-expanded", String(next));
    li.setAttribute("aria-expanded", String(next));
    if (next && !children) {
      children = document.createElement("ul");
      children.setAttribute("role", "group");
      li.append(children);
      page(children, value, 0);
    }
    if (children) children.hidden = !next;
  };
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  if (open) setOpen(true);
  return li;
}

/** Appends children `start..start+PAGE` of `value`, then a "show more" button. */
function page(list, value, start) {
  const keys = Array.isArray(value) ? null : Object.keys(value);
  const total = keys ? keys.length : value.length;
  const end = Math.min(total, start + PAGE);
  const fragment = document.createDocumentFragment();
  for (let i = start; i < end; i++) {
    const key = keys ? keys[i] : i;
    fragment.append(item(String(key), value[key], false));
  }
  if (end < total) {
    const li = document.createElement("li");
    const more = document.createElement("button");
    more.type = "button";
    more.className = "more";
    more.textContent = `Show ${Math.min(PAGE, total - end)} more (${total - end} not shown)`;
    more.addEventListener("click", () => {
      li.remove();
      page(list, value, end);
    });
    li.append(more);
    fragment.append(li);
  }
  list.append(fragment);
}
