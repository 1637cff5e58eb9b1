/**
 * app.js — the dashboard: a live table of pods, a pod's log, and a form to
 * apply and delete pods, all over gRPC-Web (grpc-web.js) to infra.PodService.
 *
 * The table is kept the way the `watch-pods` client keeps its view
 * (src/client/watch.rs): list in pages, watch from the list's version with
 * bookmarks, resume after a drop from the newest version held (capped,
 * jittered backoff), and when the server can no longer resume from there
 * (OUT_OF_RANGE) list again and apply the difference. Writes are SyncPods
 * calls of one op each, since a page cannot stream a request.
 *
 * The view lives in the URL: `/?namespace=NS` shows one namespace, and
 * `&pod=NAME` also opens that pod's log (`pod=NS/NAME` when all namespaces
 * are shown). Every string from the server is put in the page as text
 * (textContent), never as HTML.
 *
 * Hooks for tests and benchmarks, on `window.podDashboard`:
 * - `states`: every connection state, in order (a brief "reconnecting"
 *   cannot be missed by polling);
 * - `firstRenderMs`: performance.now() in the first animation frame after
 *   the first complete list was put in the table;
 * - `drawLog` (with `?measure=1`): `[namespace/name, version, epoch ms]` for
 *   each row inserted or updated, taken in the frame that drew it.
 */

import { Code, GrpcError, codeName, serverStream, unary } from "./grpc-web.js";

const PAGE_SIZE = 500;
const LIST_ATTEMPTS = 5;
const CALL_TIMEOUT_MS = 10_000;
const TAIL_LINES = 200;
const MAX_LOG_LINES = 5_000;
const MAX_DRAW_LOG = 200_000;
const CHANGED_MS = 1_500;
const FADE_MS = 600;
const UNREACHABLE_AFTER = 3;
const ROW_HEIGHT = 23; // px: `#pods tr` in style.css
const WINDOW_MARGIN = 40; // rows rendered beyond each edge of the view
const TOKEN_KEY = "pod-dashboard-token";

const $ = (id) => document.getElementById(id);

const hooks = {
  states: [],
  firstRenderMs: null,
  drawLog: new URLSearchParams(location.search).get("measure") === "1" ? [] : null,
};
window.podDashboard = hooks;

// ------------------------------------------------------------ retrying

/** Capped exponential backoff with full jitter: 250 ms doubling to 5 s. */
class Backoff {
  attempt = 0;

  next() {
    const ceiling = Math.min(5_000, 250 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 20);
    return Math.random() * ceiling;
  }

  reset() {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (callers check it). */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Answers no retry can fix (as src/client/retry.rs; UNAUTHENTICATED waits for a token instead). */
function isFatal(error) {
  return [Code.INVALID_ARGUMENT, Code.UNIMPLEMENTED, Code.PERMISSION_DENIED].includes(error.code);
}

// ------------------------------------------------------------ the token

/** The bearer token, kept for this tab's session; a refusal asks for one. */
const auth = {
  token: sessionStorage.getItem(TOKEN_KEY),
  waiting: [],

  /** Shows the token form; resolves once a token is entered (or `signal` aborts). */
  refused(signal) {
    $("token-message").textContent = this.token ? "the server refused this token" : "this server needs a token";
    $("token-form").hidden = false;
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      signal?.addEventListener("abort", resolve, { once: true });
    });
  },

  set(token) {
    this.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-form").hidden = true;
    for (const resume of this.waiting.splice(0)) resume();
  },
};

function callOptions(options) {
  return { token: auth.token, ...options };
}

// ------------------------------------------------------------ the calls

/** Every pod of `namespace` ("" = all) and the version the list reflects. */
async function listAll(namespace, signal) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await listOnce(namespace, signal);
    } catch (error) {
      // The history moved past the first page's version: start again.
      if (error.code !== Code.OUT_OF_RANGE || attempt >= LIST_ATTEMPTS) throw error;
    }
  }
}

/** One list, page by page; every page is consistent at the first page's version. */
async function listOnce(namespace, signal) {
  const pods = [];
  let version = null;
  let continueToken = "";
  do {
    const request = { namespace, limit: PAGE_SIZE, continue_token: continueToken };
    const page = await unary("ListPods", "ListPodsRequest", request, "ListPodsResponse",
      callOptions({ signal, timeoutMs: CALL_TIMEOUT_MS }));
    version ??= page.resource_version;
    for (const pod of page.pods) pods.push(pod);
    continueToken = page.continue_token;
  } while (continueToken);
  return { pods, version };
}

/** One op as one SyncPods call: the body is the op, its end the half-close. */
async function sync(op, options) {
  let ack = null;
  const onMessage = (event) => { ack = event.ack ?? ack; };
  await serverStream("SyncPods", "SyncRequest", { id: 1n, ...op }, "SyncEvent",
    callOptions({ timeoutMs: CALL_TIMEOUT_MS, ...options, onMessage }));
  if (!ack) throw new GrpcError(Code.INTERNAL, "the server ended the call without an ack");
  return ack;
}

/** Creates or updates a pod; resolves to the SyncAck (code != 0: refused, see message). */
export function applyPod(pod, options = {}) {
  return sync({ apply: pod }, options);
}

/** Deletes a pod; resolves to the SyncAck. */
export function deletePod(namespace, name, options = {}) {
  return sync({ delete: { namespace, name } }, options);
}

// ------------------------------------------------------------ the URL

/** `{namespace, log}` from the URL; `log` is `{namespace, name}` or null. */
function readView() {
  const query = new URLSearchParams(location.search);
  const namespace = query.get("namespace") ?? "";
  const pod = query.get("pod");
  if (!pod) return { namespace, log: null };
  // A name cannot hold "/", so `pod=NS/NAME` is unambiguous.
  const [podNamespace, name] = pod.includes("/") ? pod.split("/", 2) : [namespace || "default", pod];
  return { namespace, log: { namespace: podNamespace, name } };
}

function writeView(namespace, log, { push = false } = {}) {
  const query = new URLSearchParams(location.search); // keeps other parameters (measure=1)
  query.delete("namespace");
  query.delete("pod");
  if (namespace) query.set("namespace", namespace);
  if (log) query.set("pod", log.namespace === namespace ? log.name : `${log.namespace}/${log.name}`);
  const search = query.toString().replaceAll("%2F", "/"); // `pod=NS/NAME`, readable
  const url = search ? `${location.pathname}?${search}` : location.pathname;
  if (url !== `${location.pathname}${location.search}`) history[push ? "pushState" : "replaceState"](null, "", url);
}

// ------------------------------------------------------------ the table

const keyOf = (pod) => `${pod.namespace}/${pod.name}`;

/** Sorts by namespace, then name, in code point order like the server. */
function compare(a, b) {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return 0;
}

const GOOD = new Set(["Running", "Succeeded", "Completed"]);
const WAITING = new Set(["Pending", "ContainerCreating", "PodInitializing", "Terminating", "SchedulingGated", "Unknown"]);

/** The colour of a status: good, waiting (including `Init:N/M`), or failing. */
function statusClass(status) {
  if (GOOD.has(status)) return "status-good";
  if (WAITING.has(status) || /^Init:\d+\/\d+$/.test(status)) return "status-waiting";
  return "status-failing";
}

function drawStatus(cell, status) {
  cell.textContent = status;
  cell.className = `status ${statusClass(status)}`;
  cell.classList.toggle("status-terminating", status === "Terminating");
}

/**
 * The pods table. The model (`pods`: what the server has said) changes at
 * once; the DOM catches up once per animation frame, touching only the rows
 * whose pod changed, so a burst of changes costs one redraw of those rows and
 * never a rebuild of the whole table.
 */
class PodTable {
  pods = new Map(); // key -> pod: the model
  rows = new Map(); // key -> {pod, row, flashTimer}: what is drawn
  order = []; // the drawn entries, sorted by namespace then name
  fading = new Map(); // key -> {row, timer}: deleted rows fading out
  dirty = new Set(); // keys whose model may differ from what is drawn
  namespaces = new Set(); // every namespace seen, for the picker
  selected = ""; // the namespace shown ("" = all)
  filter = "";
  frame = 0;
  listed = false; // a complete list has been drawn: "no pods" may show
  justListed = false;
  quiet = false; // this frame draws a first list: no highlight for it
  refilter = false;
  namespacesChanged = true;
  countsShown = "";

  windowed = new Set(); // the entries rendered now (see drawWindow)

  constructor(tbody, template, scroller, spacers) {
    this.tbody = tbody;
    this.template = template.content.firstElementChild;
    this.scroller = scroller;
    this.spacers = spacers;
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(scroller);
  }

  /** Takes one change from the watch (a pod or a tombstone). */
  apply(pod) {
    const key = keyOf(pod);
    if (pod.deleted) {
      if (!this.pods.delete(key)) return;
    } else {
      const known = this.pods.get(key);
      if (known && known.resource_version >= pod.resource_version) return; // nothing new
      this.pods.set(key, pod);
      this.seeNamespace(pod.namespace);
    }
    this.dirty.add(key);
    this.schedule();
  }

  /** Takes a fresh list: pods gone from it are deleted, the rest applied. */
  replace(pods) {
    this.quiet = this.pods.size === 0;
    const fresh = new Set(pods.map(keyOf));
    const gone = [...this.pods.values()].filter((pod) => !fresh.has(keyOf(pod)));
    for (const pod of gone) this.apply({ ...pod, deleted: true });
    for (const pod of pods) this.apply(pod);
    this.justListed = true;
    this.schedule();
  }

  /** Empties the table at once, to show another namespace ("" = all). */
  reset(namespace) {
    this.selected = namespace;
    this.seeNamespace(namespace);
    this.namespacesChanged = true;
    for (const { timer } of this.fading.values()) clearTimeout(timer);
    for (const { flashTimer } of this.rows.values()) clearTimeout(flashTimer);
    this.tbody.replaceChildren();
    this.pods.clear();
    this.rows.clear();
    this.fading.clear();
    this.dirty.clear();
    this.windowed.clear();
    this.order = [];
    this.listed = false;
    this.schedule();
  }

  seeNamespace(namespace) {
    if (!namespace || this.namespaces.has(namespace)) return;
    this.namespaces.add(namespace);
    this.namespacesChanged = true;
  }

  setFilter(text) {
    this.filter = text.trim().toLowerCase();
    this.refilter = true;
    this.scroller.scrollTop = 0; // the matches, from the first
    this.schedule();
  }

  matches(name) {
    return name.toLowerCase().includes(this.filter);
  }

  schedule() {
    this.frame ||= requestAnimationFrame(() => this.draw());
  }

  /** One animation frame: the changed rows, then the filter and the summary. */
  draw() {
    this.frame = 0;
    // Read before writing anything, so that reading forces no extra layout.
    const view = { top: this.scroller.scrollTop, height: this.scroller.clientHeight };
    const drawn = this.drawChanges();
    this.dirty.clear();
    if (this.refilter) this.applyFilter();
    this.drawWindow(view);
    this.drawSummary();
    this.record(drawn);
    this.quiet = false;
    if (this.justListed) {
      this.justListed = false;
      this.listed = true;
      requestAnimationFrame(() => { hooks.firstRenderMs ??= performance.now(); });
    }
  }

  drawChanges() {
    const drawn = [];
    for (const key of this.dirty) {
      const pod = this.pods.get(key);
      const entry = this.rows.get(key);
      if (!pod) {
        if (entry) this.fadeOut(entry);
      } else if (!entry) {
        this.insert(pod);
        drawn.push(pod);
      } else if (entry.pod !== pod) {
        this.update(entry, pod);
        drawn.push(pod);
      }
    }
    return drawn;
  }

  newEntry(pod) {
    const key = keyOf(pod);
    this.dropFading(key); // a pod re-created while its old row fades
    const row = this.template.cloneNode(true);
    const entry = { pod, row, flashTimer: 0 };
    Object.assign(row.dataset, { key, namespace: pod.namespace, name: pod.name });
    row.cells[0].textContent = pod.namespace;
    row.querySelector(".pod-name").textContent = pod.name;
    this.fillCells(row, pod);
    row.hidden = !this.matches(pod.name);
    this.rows.set(key, entry);
    if (!this.quiet) this.flash(entry);
    return entry;
  }

  /** At its sorted place, found by binary search. */
  insert(pod) {
    const index = this.indexOf(pod);
    const entry = this.newEntry(pod);
    this.tbody.insertBefore(entry.row, this.order[index]?.row ?? null);
    this.order.splice(index, 0, entry);
  }

  /** In place: only the cells whose value changed. */
  update(entry, pod) {
    this.fillCells(entry.row, pod, entry.pod);
    entry.pod = pod;
    this.flash(entry);
  }

  fillCells(row, pod, old = {}) {
    if (pod.status !== old.status) {
      drawStatus(row.cells[2], pod.status);
      row.dataset.status = pod.status;
    }
    if (pod.replicas !== old.replicas) row.cells[3].textContent = String(pod.replicas);
    row.cells[4].textContent = String(pod.resource_version);
    row.dataset.version = String(pod.resource_version);
  }

  /** The "just changed" highlight, for CHANGED_MS. */
  flash(entry) {
    const { classList } = entry.row;
    // Switching between two identical animations restarts the highlight of
    // a row that changes again, without forcing a layout to do it.
    if (classList.contains("changed")) classList.toggle("again");
    else classList.add("changed");
    clearTimeout(entry.flashTimer);
    entry.flashTimer = setTimeout(() => classList.remove("changed", "again"), CHANGED_MS);
  }

  /** Out of the model's order at once; out of the DOM when the fade ends. */
  fadeOut(entry) {
    const key = entry.row.dataset.key;
    clearTimeout(entry.flashTimer);
    this.rows.delete(key);
    this.windowed.delete(entry);
    this.order.splice(this.indexOf(entry.pod), 1);
    entry.row.classList.remove("changed", "again");
    entry.row.classList.add("deleted");
    // A timer, not animationend: a hidden tab runs no animations.
    const timer = setTimeout(() => this.dropFading(key), FADE_MS);
    this.fading.set(key, { row: entry.row, timer });
  }

  dropFading(key) {
    const fading = this.fading.get(key);
    if (!fading) return;
    clearTimeout(fading.timer);
    fading.row.remove();
    this.fading.delete(key);
  }

  /** Where `pod` is, or would go, in `order`. */
  indexOf(pod) {
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (compare(this.order[middle].pod, pod) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /**
   * Renders only the rows in and near the part of the table scrolled to;
   * the others are `offscreen` (display: none), and two empty spacers
   * stand in for their height. Every row stays in the DOM, in order, but
   * the browser lays out and paints a hundred rows per change, not 10,000
   * (which takes it tens of milliseconds a frame). The spacers are not the
   * tbody's padding because a change to the tbody's style makes the browser
   * restyle all of its rows.
   */
  drawWindow({ top, height }) {
    const shown = this.order.filter(({ row }) => !row.hidden);
    const inView = Math.ceil(height / ROW_HEIGHT);
    // Clamped: after the table shrank, `top` may be past its new end.
    const start = Math.min(Math.floor(top / ROW_HEIGHT), Math.max(0, shown.length - inView));
    const first = Math.max(0, start - WINDOW_MARGIN);
    const end = Math.min(shown.length, start + inView + WINDOW_MARGIN);
    const windowed = new Set(shown.slice(first, end));
    for (const entry of this.windowed) if (!windowed.has(entry)) entry.row.classList.add("offscreen");
    for (const entry of windowed) if (!this.windowed.has(entry)) entry.row.classList.remove("offscreen");
    this.windowed = windowed;
    this.spacers.above.style.height = `${first * ROW_HEIGHT}px`;
    this.spacers.below.style.height = `${(shown.length - end) * ROW_HEIGHT}px`;
  }

  applyFilter() {
    this.refilter = false;
    for (const { pod, row } of this.order) {
      const hidden = !this.matches(pod.name);
      if (row.hidden !== hidden) row.hidden = hidden;
    }
  }

  /** The status counts of the rows shown, the namespace picker, "no pods". */
  drawSummary() {
    const counts = new Map();
    let shown = 0;
    for (const { pod, row } of this.order) {
      if (row.hidden) continue;
      shown += 1;
      counts.set(pod.status, (counts.get(pod.status) ?? 0) + 1);
    }
    const sorted = [...counts].sort(([a], [b]) => (a < b ? -1 : 1));
    const signature = JSON.stringify(sorted);
    if (signature !== this.countsShown) {
      this.countsShown = signature;
      drawCounts(sorted, shown);
    }
    if (this.namespacesChanged) {
      this.namespacesChanged = false;
      drawNamespaces(this.namespaces, this.selected);
    }
    $("empty").hidden = !this.listed || shown > 0;
  }

  record(pods) {
    const log = hooks.drawLog;
    if (!log || pods.length === 0) return;
    const at = performance.timeOrigin + performance.now();
    for (const pod of pods) {
      if (log.length >= MAX_DRAW_LOG) return;
      log.push([keyOf(pod), Number(pod.resource_version), at]);
    }
  }
}

function drawCounts(sorted, shown) {
  const spans = sorted.map(([status, count]) => {
    const span = document.createElement("span");
    span.className = `count ${statusClass(status)}`;
    span.dataset.status = status;
    span.textContent = `${status} ${count}`;
    return span;
  });
  const total = document.createElement("span");
  total.className = "total";
  total.dataset.total = shown;
  total.textContent = `${shown} ${shown === 1 ? "pod" : "pods"}`;
  $("counts").replaceChildren(...spans, total);
}

function drawNamespaces(namespaces, selected) {
  const select = $("namespace");
  const options = [...namespaces].sort().map((namespace) => new Option(namespace, namespace));
  select.replaceChildren(new Option("All namespaces", ""), ...options);
  select.value = selected;
}

// ------------------------------------------------------------ the watch

function setConnection(state, detail = "") {
  const indicator = $("connection");
  indicator.title = detail;
  if (hooks.states.at(-1) === state) return;
  hooks.states.push(state);
  indicator.dataset.state = state;
  indicator.textContent = `● ${state}`;
}

/**
 * The live view of one namespace: list, then watch from the list's version;
 * resume after a drop; list again when the server cannot resume. The same
 * steps as PodWatch in src/client/watch.rs.
 */
class PodWatch {
  controller = null;

  constructor(table) {
    this.table = table;
  }

  /** Watches `namespace` ("" = all), cancelling any earlier watch. */
  start(namespace) {
    this.controller?.abort();
    this.controller = new AbortController();
    setConnection("connecting");
    this.run(namespace, this.controller.signal);
  }

  async run(namespace, signal) {
    const backoff = new Backoff();
    const place = { version: null }; // null: list first
    let failures = 0; // consecutive attempts that failed to connect
    while (!signal.aborted) {
      let live = false;
      try {
        if (place.version === null) {
          place.version = await this.list(namespace, signal);
          backoff.reset();
        }
        await this.watch(namespace, place, signal, backoff, () => { live = true; failures = 0; });
        throw new GrpcError(Code.UNAVAILABLE, "the server ended the watch");
      } catch (error) {
        if (signal.aborted) return;
        if (error.code === Code.OUT_OF_RANGE) {
          place.version = null; // too far behind for the history: list again, now
          continue;
        }
        if (error.code === Code.UNAUTHENTICATED) {
          setConnection("unauthenticated", error.message);
          await auth.refused(signal);
          continue;
        }
        if (!(error instanceof GrpcError) || isFatal(error)) {
          if (!(error instanceof GrpcError)) console.error(error); // a bug, not an answer
          setConnection("failed", error.message);
          return;
        }
        const unreachable = error.network || error.code === Code.UNAVAILABLE;
        failures = !live && unreachable ? failures + 1 : 0;
        setConnection(failures >= UNREACHABLE_AFTER ? "unreachable" : "reconnecting", error.message);
        await sleep(backoff.next(), signal);
      }
    }
  }

  /** Lists every page and puts the difference in the table; returns the list's version. */
  async list(namespace, signal) {
    const { pods, version } = await listAll(namespace, signal);
    signal.throwIfAborted(); // a list that finished just as the namespace changed
    this.table.replace(pods);
    return version;
  }

  /** One watch stream, until it ends; `place.version` follows its changes and bookmarks. */
  watch(namespace, place, signal, backoff, onLive) {
    const request = { namespace, resource_version: place.version, allow_bookmarks: true };
    // The server answers with headers once the watch is registered; with
    // no change to send, a watch from a version may send nothing for a while.
    const onHeaders = () => {
      setConnection("live");
      onLive();
    };
    const onMessage = (pod) => {
      if (signal.aborted) return;
      backoff.reset();
      if (pod.resource_version > place.version) place.version = pod.resource_version;
      if (!pod.bookmark) this.table.apply(pod);
    };
    return serverStream("WatchPods", "ListPodsRequest", request, "Pod", callOptions({ signal, onHeaders, onMessage }));
  }
}

// ------------------------------------------------------------ the log

/** The log panel: one pod's log, tailed and followed, at most MAX_LOG_LINES lines. */
class LogViewer {
  target = null; // {namespace, name} of the log shown
  controller = null;
  pending = []; // lines not yet drawn
  frame = 0;
  atBottom = true; // auto-scroll only while the view is at the bottom

  constructor() {
    this.lines = $("log-lines");
    this.lines.addEventListener("scroll", () => this.onScroll());
    $("follow").addEventListener("change", () => this.onFollowChange());
    $("log-close").addEventListener("click", () => this.close());
  }

  open(namespace, name) {
    this.target = { namespace, name };
    $("log").hidden = false;
    $("log-title").textContent = `${namespace}/${name}`;
    this.restart();
  }

  close() {
    this.stop();
    this.target = null;
    $("log").hidden = true;
    this.clear();
    onViewChange();
  }

  restart() {
    this.stop();
    this.clear();
    this.controller = new AbortController();
    this.run(this.target, $("follow").checked, this.controller.signal);
    onViewChange();
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  onFollowChange() {
    if (!this.target) return;
    if ($("follow").checked) return this.restart(); // the tail again, from a clear view
    this.stop();
    this.status("not following");
  }

  /** Tails the log (and follows it); after a drop while following, tails it again. */
  async run({ namespace, name }, follow, signal) {
    const backoff = new Backoff();
    const request = { namespace, pod: name, follow, tail_lines: TAIL_LINES };
    // Accepted: the tail replaces what is shown (a retry shows no line twice).
    const onHeaders = () => {
      this.clear();
      this.status(follow ? "following" : "");
    };
    const onMessage = (chunk) => {
      backoff.reset();
      this.append(chunk.lines);
    };
    while (!signal.aborted) {
      try {
        this.status(follow ? "connecting…" : "loading…");
        await serverStream("GetLogs", "GetLogsRequest", request, "LogChunk", callOptions({ signal, onHeaders, onMessage }));
        if (!follow) return this.status("end of log (not following)");
        this.status("the log ended (pod deleted?); trying again…");
      } catch (error) {
        if (signal.aborted) return;
        if (error.code === Code.UNAUTHENTICATED) {
          this.status("waiting for a token", true);
          await auth.refused(signal);
          continue;
        }
        this.status(error.message, true); // e.g. NOT_FOUND: pod dev/web not found
        if (!follow || isFatal(error)) return;
      }
      await sleep(backoff.next(), signal);
    }
  }

  status(text, error = false) {
    const status = $("log-status");
    status.textContent = text;
    status.dataset.kind = error ? "error" : "info";
  }

  clear() {
    this.pending = [];
    this.lines.replaceChildren();
    this.atBottom = true;
    $("log-paused").hidden = true;
  }

  append(lines) {
    for (const line of lines) this.pending.push(line);
    // A hidden tab draws nothing: keep only what could be shown.
    if (this.pending.length > MAX_LOG_LINES) this.pending.splice(0, this.pending.length - MAX_LOG_LINES);
    this.frame ||= requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = 0;
    const fragment = document.createDocumentFragment();
    for (const text of this.pending.splice(0)) {
      const line = document.createElement("div");
      line.className = "line";
      line.textContent = text;
      fragment.append(line);
    }
    this.lines.append(fragment);
    for (let excess = this.lines.childElementCount - MAX_LOG_LINES; excess > 0; excess -= 1) {
      this.lines.firstElementChild.remove();
    }
    if (this.atBottom) this.lines.scrollTop = this.lines.scrollHeight;
  }

  onScroll() {
    const { scrollHeight, scrollTop, clientHeight } = this.lines;
    this.atBottom = scrollHeight - scrollTop - clientHeight < 24;
    $("log-paused").hidden = this.atBottom;
  }
}

// ------------------------------------------------------------ the forms

let writes = 0; // only the latest write's outcome is shown

/** Runs a write (a function returning a SyncAck) and shows its outcome. */
async function write(verb, send) {
  const id = (writes += 1);
  let text;
  let ok = false;
  try {
    const ack = await send();
    ok = ack.code === 0;
    text = ok
      ? `${verb} ${keyOf(ack.pod)} (version ${ack.pod.resource_version})`
      : ack.message || codeName(ack.code); // the server's reason, verbatim
  } catch (error) {
    if (error.code === Code.UNAUTHENTICATED) auth.refused();
    text = error.grpcMessage ?? error.message;
  }
  if (id !== writes) return;
  const result = $("write-result");
  result.dataset.outcome = ok ? "ok" : "error";
  result.textContent = text;
}

function formPod() {
  const replicas = $("apply-replicas").value.trim();
  return {
    namespace: $("apply-namespace").value.trim(),
    name: $("apply-name").value.trim(),
    status: $("apply-status").value.trim(),
    replicas: replicas === "" ? 0 : Number(replicas),
  };
}

function fillForm(pod) {
  $("apply-namespace").value = pod.namespace;
  $("apply-name").value = pod.name;
  $("apply-status").value = pod.status;
  $("apply-replicas").value = pod.replicas;
}

function setUpForms(table, logViewer) {
  // The CSP's form-action 'none' forbids real submissions: the page handles them.
  $("apply-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const pod = formPod();
    write("applied", async () => {
      if (!Number.isInteger(pod.replicas)) throw new Error("replicas must be a whole number");
      return applyPod(pod);
    });
  });
  $("delete-submit").addEventListener("click", () => {
    const { namespace, name } = formPod();
    write("deleted", () => deletePod(namespace, name));
  });
  // A click on a row fills the form; its name opens its log; its ✕ deletes it.
  $("pods").addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    const pod = row && table.pods.get(row.dataset.key);
    if (!pod) return;
    if (event.target.closest("button.delete-pod")) {
      write("deleted", () => deletePod(pod.namespace, pod.name));
      return;
    }
    fillForm(pod);
    if (event.target.closest("button.pod-name")) logViewer.open(pod.namespace, pod.name);
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    $("token-input").value = "";
    auth.set(token);
  });
}

// ------------------------------------------------------------ start

const table = new PodTable($("pods"), $("pod-row"), $("pods-panel"), { above: $("pods-above"), below: $("pods-below") });
const podWatch = new PodWatch(table);
const logViewer = new LogViewer();
let namespace = null; // the namespace shown ("" = all)

/** Shows `next` ("" = all): a fresh list and watch of it. */
function showNamespace(next) {
  if (next === namespace) return;
  namespace = next;
  table.reset(next);
  $("apply-namespace").value = next || "default";
  podWatch.start(next);
}

/** The URL follows the view. */
function onViewChange({ push = false } = {}) {
  if (namespace !== null) writeView(namespace, logViewer.target, { push });
}

/** The view follows the URL (at load and on back/forward). */
function showView() {
  const view = readView();
  showNamespace(view.namespace);
  const shown = logViewer.target;
  if (!view.log) {
    if (shown) logViewer.close();
  } else if (!shown || keyOf(shown) !== keyOf(view.log)) {
    logViewer.open(view.log.namespace, view.log.name);
  }
}

$("namespace").addEventListener("change", (event) => {
  showNamespace(event.target.value);
  onViewChange({ push: true });
});
$("filter").addEventListener("input", (event) => table.setFilter(event.target.value));
window.addEventListener("popstate", showView);
setUpForms(table, logViewer);
table.setFilter($("filter").value); // a value the browser restored
showView();
