// The page's writes greyed out once the server refused them as
// PERMISSION_DENIED (write-access.js, with write-form.js as app.js wires
// them), in node: `node --test` (run by tests/page.rs). The elements are
// small fakes with only what the two modules touch; the api answers each
// write with the ack or the error a test gives it.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Code, GrpcError } from "../grpc-web.js";
import { WriteAccess, refusesWrites } from "../write-access.js";
import { WriteForm } from "../write-form.js";

const REFUSAL = 'user "viewer" may not write pods in namespace "dev": no policy allows it';

class FakeElement extends EventTarget {
  hidden = false;
  disabled = false;
  textContent = "";
  value = "";
  dataset = {};
  classes = new Set();
  classList = {
    toggle: (name, on) => (on ? this.classes.add(name) : this.classes.delete(name)),
    contains: (name) => this.classes.has(name),
  };
}

/** The page's write controls and notice, a WriteAccess and a WriteForm wired as app.js wires them. */
function page(answer, { token = "viewer-token" } = {}) {
  const el = Object.fromEntries(
    ["form", "namespace", "name", "status", "replicas", "deleteButton", "result", "rows", "notice", "reason", "change"]
      .map((name) => [name, new FakeElement()]),
  );
  el.form.elements = [el.namespace, el.name, el.status, el.replicas, el.deleteButton];
  el.notice.hidden = true;
  Object.assign(el.namespace, { value: "dev" });
  Object.assign(el.name, { value: "web" });
  Object.assign(el.replicas, { value: "1" });
  const state = { token, sent: 0, offered: 0 };
  const api = {
    token: () => state.token,
    apply: async () => { state.sent += 1; return answer(); },
    delete: async () => { state.sent += 1; return answer(); },
  };
  const access = new WriteAccess(el, { currentToken: () => state.token, onChangeToken: () => { state.offered += 1; } });
  const form = new WriteForm(el, api, {
    podAt: () => null,
    openLog: () => {},
    onUnauthenticated: () => {},
    onWritesRefused: (message, sentWith) => access.refused(message, sentWith),
    mayWrite: () => access.allowed,
  });
  const apply = () => form.write("applied", () => api.apply());
  return { el, access, form, state, apply };
}

/** Whether every write control is disabled, the rows greyed and the notice shown. */
function readOnly(el) {
  const controls = el.form.elements.map((control) => control.disabled);
  const all = controls.every(Boolean);
  assert.ok(all || controls.every((disabled) => !disabled), `some controls disabled, not all: ${controls}`);
  assert.equal(el.rows.classList.contains("read-only"), all);
  assert.equal(el.notice.hidden, !all);
  return all;
}

test("only PERMISSION_DENIED says this identity may not write", () => {
  assert.ok(refusesWrites(Code.PERMISSION_DENIED));
  for (const code of [Code.OK, Code.INVALID_ARGUMENT, Code.ABORTED, Code.UNAUTHENTICATED, Code.UNAVAILABLE, undefined]) {
    assert.ok(!refusesWrites(code), `code ${code}`);
  }
});

test("a write refused in its ack shows the server's message and greys the writes out", async () => {
  const { el, state, apply } = page(() => ({ code: Code.PERMISSION_DENIED, message: REFUSAL }));
  assert.ok(!readOnly(el), "writable until the server says otherwise");
  await apply();
  assert.equal(el.result.textContent, REFUSAL, "the server's message, verbatim");
  assert.equal(el.result.dataset.outcome, "error");
  assert.ok(readOnly(el));
  assert.equal(el.reason.textContent, `read-only: the server refused writes for this token: ${REFUSAL}`);
  // A write that still gets through (a greyed row's button, from the
  // keyboard) is not sent.
  await apply();
  assert.equal(state.sent, 1);
});

test("a refusal of the whole call greys the writes out too", async () => {
  const { el, apply } = page(() => { throw new GrpcError(Code.PERMISSION_DENIED, REFUSAL); });
  await apply();
  assert.equal(el.result.textContent, REFUSAL);
  assert.ok(readOnly(el));
});

test("other refusals leave the writes enabled", async () => {
  for (const answer of [
    () => ({ code: Code.INVALID_ARGUMENT, message: "name: must be a DNS-1123 label" }),
    () => ({ code: Code.ABORTED, message: "the pod changed" }),
    () => { throw new GrpcError(Code.UNAVAILABLE, "the server is stopping"); },
  ]) {
    const { el, apply } = page(answer);
    await apply();
    assert.equal(el.result.dataset.outcome, "error");
    assert.ok(!readOnly(el), el.result.textContent);
  }
});

test("another token brings the writes back", async () => {
  const { el, access, state, apply } = page(() => ({ code: Code.PERMISSION_DENIED, message: REFUSAL }));
  await apply();
  assert.ok(readOnly(el));
  el.change.dispatchEvent(new Event("click"));
  assert.equal(state.offered, 1, "the notice offers the token form");
  state.token = "admin-token";
  access.tokenChanged();
  assert.ok(!readOnly(el));
  assert.equal(el.reason.textContent, "");
  await apply();
  assert.equal(state.sent, 2, "the new token's write is sent");
});

test("a refusal of a token no longer sent changes nothing", async () => {
  let refuse;
  const { el, access, state, apply } = page(() => new Promise((resolve) => { refuse = resolve; }));
  const inFlight = apply();
  state.token = "admin-token"; // entered while the viewer's write is in flight
  access.tokenChanged();
  refuse({ code: Code.PERMISSION_DENIED, message: REFUSAL });
  await inFlight;
  assert.equal(el.result.textContent, REFUSAL, "its outcome is still shown");
  assert.ok(!readOnly(el), "but the new token may write");
});
