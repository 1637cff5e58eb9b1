/**
 * hooks.js — what the page records for tests and benchmarks, published as
 * `window.podDashboard`:
 * - `states`: every connection state, in order (a brief "reconnecting"
 *   cannot be missed by polling);
 * - `firstRenderMs`: performance.now() in the first animation frame after
 *   the first complete list was put in the table;
 * - `drawLog` (with `?measure=1`, else null): `[namespace/name, version,
 *   epoch ms]` for each row inserted or updated, taken in the frame that
 *   drew it.
 */

import { keyOf } from "./pods.js";

const MAX_DRAW_LOG = 200_000;

export class DashboardHooks {
  states = [];
  firstRenderMs = null;

  constructor({ measure }) {
    this.drawLog = measure ? [] : null;
  }

  stateShown(state) {
    this.states.push(state);
  }

  /** Called in the frame after a complete list was drawn: the first one counts. */
  listDrawn(now) {
    this.firstRenderMs ??= now;
  }

  /** The pods whose rows a frame inserted or updated, drawn at `at` (epoch ms). */
  drawn(pods, at) {
    const log = this.drawLog;
    if (!log) return;
    for (const pod of pods) {
      if (log.length >= MAX_DRAW_LOG) return;
      log.push([keyOf(pod), Number(pod.resource_version), at]);
    }
  }
}
