/**
 * view-url.js — the view as a URL, so that a view can be linked, reloaded
 * and stepped through with back and forward.
 *
 * `/?namespace=NS` shows one namespace, and `&pod=NAME` also opens that
 * pod's log (`pod=NS/NAME` when all namespaces are shown). Other parameters
 * (`measure=1`) are kept.
 */

/** `{namespace, log}` from a query string; `log` is `{namespace, name}` or null. */
export function readView(search) {
  const query = new URLSearchParams(search);
  const namespace = query.get("namespace") ?? "";
  const pod = query.get("pod");
  if (!pod) return { namespace, log: null };
  // A name cannot hold "/", so `pod=NS/NAME` is unambiguous.
  const [podNamespace, name] = pod.includes("/") ? pod.split("/", 2) : [namespace || "default", pod];
  return { namespace, log: { namespace: podNamespace, name } };
}

/** The query string (without "?") of `search` showing `namespace` and `log`. */
export function viewSearch(search, namespace, log) {
  const query = new URLSearchParams(search);
  query.delete("namespace");
  query.delete("pod");
  if (namespace) query.set("namespace", namespace);
  if (log) query.set("pod", log.namespace === namespace ? log.name : `${log.namespace}/${log.name}`);
  return query.toString().replaceAll("%2F", "/"); // `pod=NS/NAME`, readable
}

/** Puts the view in the address bar: a new history entry with `push`, else in place. */
export function writeView({ location, history }, namespace, log, { push = false } = {}) {
  const search = viewSearch(location.search, namespace, log);
  const url = search ? `${location.pathname}?${search}` : location.pathname;
  if (url !== `${location.pathname}${location.search}`) history[push ? "pushState" : "replaceState"](null, "", url);
}
