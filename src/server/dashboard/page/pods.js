/**
 * pods.js — what the page knows about a pod beyond its fields: its key, the
 * order the table keeps, and the kind of its status (which colour it gets).
 */

/** `namespace/name`: a pod's identity, as the table's rows and the URL name it. */
export const keyOf = (pod) => `${pod.namespace}/${pod.name}`;

/** Sorts by namespace, then name, in code point order like the server. */
export function compare(a, b) {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return 0;
}

const GOOD = new Set(["Running", "Succeeded", "Completed"]);
const WAITING = new Set(["Pending", "ContainerCreating", "PodInitializing", "Terminating", "SchedulingGated", "Unknown"]);

/** The colour of a status, as a CSS class: good, waiting (including `Init:N/M`), or failing. */
export function statusClass(status) {
  if (GOOD.has(status)) return "status-good";
  if (WAITING.has(status) || /^Init:\d+\/\d+$/.test(status)) return "status-waiting";
  return "status-failing";
}
