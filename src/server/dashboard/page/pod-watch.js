/**
 * pod-watch.js — the live view of one namespace, and the indicator that
 * shows how its connection is doing.
 *
 * The steps are those of PodWatch in src/client/watch.rs: list in pages,
 * watch from the list's version with bookmarks, resume after a drop from
 * the newest version held (with the clients' backoff), and when the server
 * can no longer resume from there (OUT_OF_RANGE) list again and apply the
 * difference.
 */

import { Code, GrpcError } from "./grpc-web.js";
import { Backoff, isFatal, sleep } from "./retry.js";

/** Consecutive failed connections after which the server is "unreachable", not "reconnecting". */
const UNREACHABLE_AFTER = 3;

export class PodWatch {
  controller = null;

  /**
   * `api`: a PodApi. Callbacks: `onList(pods)` with each complete list,
   * `onChange(pod)` with each change (a pod or a tombstone),
   * `onState(state, detail)` with the connection's state, and
   * `waitForToken(signal)` when the server asks for a token.
   */
  constructor(api, { onList, onChange, onState, waitForToken }) {
    this.api = api;
    this.on = { list: onList, change: onChange, state: onState, waitForToken };
  }

  /** Watches `namespace` ("" = all), cancelling any earlier watch. */
  start(namespace) {
    this.controller?.abort();
    this.controller = new AbortController();
    this.on.state("connecting");
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
          this.on.state("unauthenticated", error.message);
          await this.on.waitForToken(signal);
          continue;
        }
        if (!(error instanceof GrpcError) || isFatal(error)) {
          if (!(error instanceof GrpcError)) console.error(error); // a bug, not an answer
          this.on.state("failed", error.message);
          return;
        }
        const unreachable = error.network || error.code === Code.UNAVAILABLE;
        failures = !live && unreachable ? failures + 1 : 0;
        this.on.state(failures >= UNREACHABLE_AFTER ? "unreachable" : "reconnecting", error.message);
        await sleep(backoff.next(), signal);
      }
    }
  }

  /** Lists every page and hands the list on; returns the list's version. */
  async list(namespace, signal) {
    const { pods, version } = await this.api.list(namespace, signal);
    signal.throwIfAborted(); // a list that finished just as the namespace changed
    this.on.list(pods);
    return version;
  }

  /** One watch stream, until it ends; `place.version` follows its changes and bookmarks. */
  watch(namespace, place, signal, backoff, onLive) {
    const request = { namespace, resource_version: place.version, allow_bookmarks: true };
    // The server answers with headers once the watch is registered; with
    // no change to send, a watch from a version may send nothing for a while.
    const onHeaders = () => {
      this.on.state("live");
      onLive();
    };
    const onMessage = (pod) => {
      if (signal.aborted) return;
      backoff.reset();
      if (pod.resource_version > place.version) place.version = pod.resource_version;
      if (!pod.bookmark) this.on.change(pod);
    };
    return this.api.watch(request, { signal, onHeaders, onMessage });
  }
}

/** The connection indicator: `● live`, `● reconnecting`, ... with the last error as its title. */
export class ConnectionIndicator {
  state = null;

  /** `onShown(state)` is called with each state shown, once per change. */
  constructor(element, onShown) {
    this.element = element;
    this.onShown = onShown;
  }

  show(state, detail = "") {
    this.element.title = detail;
    if (this.state === state) return;
    this.state = state;
    this.onShown(state);
    this.element.dataset.state = state;
    this.element.textContent = `● ${state}`;
  }
}
