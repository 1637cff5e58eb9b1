/**
 * app.js — the dashboard: a live table of pods, a pod's log, and a form to
 * apply and delete pods, all over gRPC-Web to infra.PodService.
 *
 * This module only finds the page's elements and wires the parts together;
 * each part is given its elements and callbacks:
 * - token.js: the token, and the form that asks for it;
 * - pod-api.js: the calls (over grpc-web.js and protobuf.js);
 * - pod-watch.js: list and watch one namespace, and the connection indicator;
 * - pod-table.js and pod-summary.js: the table, and the counts and picker above it;
 * - log-viewer.js: one pod's log;
 * - write-form.js: applies and deletes;
 * - write-access.js: the writes greyed out once the server refused them to this token;
 * - view-url.js: the view in the URL (at load, and on back and forward);
 * - hooks.js: `window.podDashboard`, for tests and benchmarks.
 */

import { DashboardHooks } from "./hooks.js";
import { LogViewer } from "./log-viewer.js";
import { PodApi } from "./pod-api.js";
import { PodSummary } from "./pod-summary.js";
import { PodTable } from "./pod-table.js";
import { ConnectionIndicator, PodWatch } from "./pod-watch.js";
import { keyOf } from "./pods.js";
import { TokenPrompt } from "./token.js";
import { readView, writeView } from "./view-url.js";
import { WriteAccess } from "./write-access.js";
import { WriteForm } from "./write-form.js";

const $ = (id) => document.getElementById(id);

const hooks = new DashboardHooks({ measure: new URLSearchParams(location.search).get("measure") === "1" });
window.podDashboard = hooks;

const token = new TokenPrompt(
  { form: $("token-form"), message: $("token-message"), input: $("token-input") },
  sessionStorage,
  { onToken: () => writeAccess.tokenChanged() },
);
const waitForToken = (signal) => token.refused(signal);
const api = new PodApi(() => token.token);

const summary = new PodSummary({ counts: $("counts"), picker: $("namespace"), empty: $("empty") });
const table = new PodTable(
  { tbody: $("pods"), template: $("pod-row"), scroller: $("pods-panel"), above: $("pods-above"), below: $("pods-below") },
  {
    onSummary: (shown) => summary.draw(shown),
    onListDrawn: () => hooks.listDrawn(performance.now()),
    onDrawn: (pods) => hooks.drawn(pods, performance.timeOrigin + performance.now()),
  },
);

const indicator = new ConnectionIndicator($("connection"), (state) => hooks.stateShown(state));
const podWatch = new PodWatch(api, {
  onList: (pods) => table.replace(pods),
  onChange: (pod) => table.apply(pod),
  onState: (state, detail) => indicator.show(state, detail),
  waitForToken,
});

const logViewer = new LogViewer(
  {
    panel: $("log"), title: $("log-title"), lines: $("log-lines"), status: $("log-status"),
    paused: $("log-paused"), follow: $("follow"), close: $("log-close"),
  },
  api,
  { onChange: () => onViewChange(), waitForToken },
);

const writeAccess = new WriteAccess(
  { form: $("apply-form"), rows: $("pods"), notice: $("write-access"), reason: $("write-access-reason"), change: $("write-access-token") },
  {
    currentToken: () => token.token,
    onChangeToken: () => token.offer("a token that may write"),
  },
);

const writeForm = new WriteForm(
  {
    form: $("apply-form"), namespace: $("apply-namespace"), name: $("apply-name"), status: $("apply-status"),
    replicas: $("apply-replicas"), deleteButton: $("delete-submit"), result: $("write-result"), rows: $("pods"),
  },
  api,
  {
    podAt: (key) => table.pod(key),
    openLog: (namespace, name) => logViewer.open(namespace, name),
    onUnauthenticated: () => token.refused(),
    onWritesRefused: (message, sentWith) => writeAccess.refused(message, sentWith),
    mayWrite: () => writeAccess.allowed,
  },
);

let namespace = null; // the namespace shown ("" = all)

/** Shows `next` ("" = all): a fresh list and watch of it. */
function showNamespace(next) {
  if (next === namespace) return;
  namespace = next;
  table.reset(next);
  writeForm.setNamespace(next);
  podWatch.start(next);
}

/** The URL follows the view. */
function onViewChange({ push = false } = {}) {
  if (namespace !== null) writeView(window, namespace, logViewer.target, { push });
}

/** The view follows the URL (at load and on back/forward). */
function showView() {
  const view = readView(location.search);
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
table.setFilter($("filter").value); // a value the browser restored
showView();
