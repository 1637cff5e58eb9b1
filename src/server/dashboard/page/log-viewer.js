/**
 * log-viewer.js — the log panel: one pod's log, tailed and followed, at
 * most MAX_LOG_LINES lines, drawn once per animation frame. After a drop
 * while following, it tails the log again (with the clients' backoff); the
 * new tail replaces what is shown, so no line shows twice.
 */

import { Code } from "./grpc-web.js";
import { Backoff, isFatal, sleep } from "./retry.js";

const TAIL_LINES = 200;
const MAX_LOG_LINES = 5_000;

export class LogViewer {
  target = null; // {namespace, name} of the log shown
  controller = null;
  pending = []; // lines not yet drawn
  frame = 0;
  atBottom = true; // auto-scroll only while the view is at the bottom

  /**
   * Elements: the `panel`, its `title`, the `lines`, the `status` line, the
   * `paused` note, the `follow` checkbox and the `close` button. `api`: a
   * PodApi. Callbacks: `onChange()` when a log is opened or closed,
   * `waitForToken(signal)` when the server asks for a token.
   */
  constructor(elements, api, { onChange, waitForToken }) {
    this.elements = elements;
    this.lines = elements.lines;
    this.api = api;
    this.on = { change: onChange, waitForToken };
    this.lines.addEventListener("scroll", () => this.onScroll());
    elements.follow.addEventListener("change", () => this.onFollowChange());
    elements.close.addEventListener("click", () => this.close());
  }

  open(namespace, name) {
    this.target = { namespace, name };
    this.elements.panel.hidden = false;
    this.elements.title.textContent = `${namespace}/${name}`;
    this.restart();
  }

  close() {
    this.stop();
    this.target = null;
    this.elements.panel.hidden = true;
    this.clear();
    this.on.change();
  }

  restart() {
    this.stop();
    this.clear();
    this.controller = new AbortController();
    this.run(this.target, this.elements.follow.checked, this.controller.signal);
    this.on.change();
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  onFollowChange() {
    if (!this.target) return;
    if (this.elements.follow.checked) return this.restart(); // the tail again, from a clear view
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
        await this.api.logs(request, { signal, onHeaders, onMessage });
        if (!follow) return this.status("end of log (not following)");
        this.status("the log ended (pod deleted?); trying again…");
      } catch (error) {
        if (signal.aborted) return;
        if (error.code === Code.UNAUTHENTICATED) {
          this.status("waiting for a token", true);
          await this.on.waitForToken(signal);
          continue;
        }
        this.status(error.message, true); // e.g. NOT_FOUND: pod dev/web not found
        if (!follow || isFatal(error)) return;
      }
      await sleep(backoff.next(), signal);
    }
  }

  status(text, error = false) {
    const { status } = this.elements;
    status.textContent = text;
    status.dataset.kind = error ? "error" : "info";
  }

  clear() {
    this.pending = [];
    this.lines.replaceChildren();
    this.atBottom = true;
    this.elements.paused.hidden = true;
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
    this.elements.paused.hidden = this.atBottom;
  }
}
