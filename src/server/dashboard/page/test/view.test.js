// What the page derives from the URL and from a pod (view-url.js, pods.js),
// in node: `node --test` (run by tests/page.rs).

import assert from "node:assert/strict";
import { test } from "node:test";

import { compare, keyOf, statusClass } from "../pods.js";
import { readView, viewSearch } from "../view-url.js";

test("the view from the URL", () => {
  assert.deepEqual(readView(""), { namespace: "", log: null });
  assert.deepEqual(readView("?namespace=production"), { namespace: "production", log: null });
  assert.deepEqual(readView("?namespace=production&pod=web"), { namespace: "production", log: { namespace: "production", name: "web" } });
  assert.deepEqual(readView("?pod=web"), { namespace: "", log: { namespace: "default", name: "web" } });
  assert.deepEqual(readView("?pod=dev/web"), { namespace: "", log: { namespace: "dev", name: "web" } });
  assert.deepEqual(readView("?pod=dev%2Fweb&measure=1"), { namespace: "", log: { namespace: "dev", name: "web" } });
});

test("the URL from the view, readable and keeping other parameters", () => {
  const web = { namespace: "dev", name: "web" };
  assert.equal(viewSearch("?measure=1", "", null), "measure=1");
  assert.equal(viewSearch("?namespace=dev&pod=x", "", null), "");
  assert.equal(viewSearch("", "dev", web), "namespace=dev&pod=web");
  assert.equal(viewSearch("?measure=1", "", web), "measure=1&pod=dev/web");
  assert.equal(viewSearch("", "prod", web), "namespace=prod&pod=dev/web");
  for (const [namespace, log] of [["dev", web], ["", web], ["prod", null]]) {
    assert.deepEqual(readView(viewSearch("", namespace, log)), { namespace, log }, "a round trip");
  }
});

test("pods are keyed and sorted as the server sorts them", () => {
  assert.equal(keyOf({ namespace: "dev", name: "web" }), "dev/web");
  const pods = [["b", "a"], ["a", "z"], ["a", "Z"], ["a", "é"], ["a", "e"]].map(([namespace, name]) => ({ namespace, name }));
  assert.deepEqual(pods.sort(compare).map(keyOf), ["a/Z", "a/e", "a/z", "a/é", "b/a"]);
});

test("a status's colour", () => {
  assert.equal(statusClass("Running"), "status-good");
  assert.equal(statusClass("Completed"), "status-good");
  assert.equal(statusClass("Pending"), "status-waiting");
  assert.equal(statusClass("Init:1/3"), "status-waiting");
  assert.equal(statusClass("Init:x"), "status-failing");
  assert.equal(statusClass("CrashLoopBackOff"), "status-failing");
});
