/**
 * retry.js — how the page waits before trying a call again, and which
 * answers are not worth another try.
 *
 * The constants are those of the Rust clients' `Backoff`
 * (src/client/retry.rs), so that a page and a `watch-pods` riding out the
 * same restart knock on the server at the same pace.
 */

import { Code } from "./grpc-web.js";

/**
 * Capped exponential backoff with jitter: 100 ms doubling to 5 s, each
 * delay drawn at random from the upper half of its range, so that many pages
 * cut off together do not come back together. `reset` after a success.
 */
export class Backoff {
  static FIRST_MS = 100;
  static CAP_MS = 5_000;

  attempt = 0;

  /** `random` returns a number in [0, 1): tests pass their own. */
  constructor(random = Math.random) {
    this.random = random;
  }

  /** The next delay, in milliseconds. */
  next() {
    // 2 ** 6 already passes the cap: the exponent stops there.
    const ceiling = Math.min(Backoff.CAP_MS, Backoff.FIRST_MS * 2 ** Math.min(this.attempt, 16));
    this.attempt += 1;
    return ceiling * (0.5 + this.random() / 2);
  }

  /** Starts again from the shortest delay. */
  reset() {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (callers check it). */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Answers no retry can fix (as src/client/retry.rs; UNAUTHENTICATED waits for a token instead). */
export function isFatal(error) {
  return [Code.INVALID_ARGUMENT, Code.UNIMPLEMENTED, Code.PERMISSION_DENIED].includes(error.code);
}
