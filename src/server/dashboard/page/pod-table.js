/**
 * pod-table.js — the pods table. The model (`pods`: what the server has
 * said) changes at once; the DOM catches up once per animation frame,
 * touching only the rows whose pod changed, so a burst of changes costs one
 * redraw of those rows and never a rebuild of the whole table.
 *
 * It is given its elements and tells its owner, through callbacks, what each
 * frame drew: the summary for the header, and the rows it inserted or updated.
 * Every string from the server is put in the page as text, never as HTML.
 */

import { compare, keyOf, statusClass } from "./pods.js";

const CHANGED_MS = 1_500;
const FADE_MS = 600;
const ROW_HEIGHT = 23; // px: `#pods tr` in style.css
const WINDOW_MARGIN = 40; // rows rendered beyond each edge of the view

export class PodTable {
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
  windowed = new Set(); // the entries rendered now (see drawWindow)

  /**
   * Elements: `tbody` of the rows, the row `template`, the `scroller` they
   * scroll in, and the spacer tbodies `above` and `below` them. Callbacks:
   * `onSummary(summary)` each frame (see PodSummary.draw), `onListDrawn()`
   * in the frame after a complete list was drawn, `onDrawn(pods)` with the
   * pods whose rows a frame inserted or updated.
   */
  constructor({ tbody, template, scroller, above, below }, { onSummary, onListDrawn, onDrawn }) {
    this.tbody = tbody;
    this.template = template.content.firstElementChild;
    this.scroller = scroller;
    this.spacers = { above, below };
    this.on = { summary: onSummary, listDrawn: onListDrawn, drawn: onDrawn };
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(scroller);
  }

  /** The pod under `key` (`namespace/name`), as the server last said. */
  pod(key) {
    return this.pods.get(key);
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
    if (namespace) this.namespaces.add(namespace);
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
    if (drawn.length > 0) this.on.drawn(drawn);
    this.quiet = false;
    if (this.justListed) {
      this.justListed = false;
      this.listed = true;
      requestAnimationFrame(() => this.on.listDrawn());
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
    fillCells(row, pod);
    row.hidden = !this.matches(pod.name);
    this.rows.set(key, entry);
    if (!this.quiet) flash(entry);
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
    fillCells(entry.row, pod, entry.pod);
    entry.pod = pod;
    flash(entry);
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

  /** The status counts of the rows shown, and what the header needs beside them. */
  drawSummary() {
    const counts = new Map();
    let shown = 0;
    for (const { pod, row } of this.order) {
      if (row.hidden) continue;
      shown += 1;
      counts.set(pod.status, (counts.get(pod.status) ?? 0) + 1);
    }
    const { namespaces, selected, listed } = this;
    this.on.summary({ counts, shown, namespaces, selected, listed });
  }
}

function fillCells(row, pod, old = {}) {
  if (pod.status !== old.status) {
    const cell = row.cells[2];
    cell.textContent = pod.status;
    cell.className = `status ${statusClass(pod.status)}`;
    cell.classList.toggle("status-terminating", pod.status === "Terminating");
    row.dataset.status = pod.status;
  }
  if (pod.replicas !== old.replicas) row.cells[3].textContent = String(pod.replicas);
  row.cells[4].textContent = String(pod.resource_version);
  row.dataset.version = String(pod.resource_version);
}

/** The "just changed" highlight, for CHANGED_MS. */
function flash(entry) {
  const { classList } = entry.row;
  // Switching between two identical animations restarts the highlight of
  // a row that changes again, without forcing a layout to do it.
  if (classList.contains("changed")) classList.toggle("again");
  else classList.add("changed");
  clearTimeout(entry.flashTimer);
  entry.flashTimer = setTimeout(() => classList.remove("changed", "again"), CHANGED_MS);
}
