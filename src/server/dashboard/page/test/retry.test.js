// The page's backoff (retry.js), in node: `node --test` (run by
// tests/page.rs). Its constants are the Rust clients' (src/client/retry.rs).

import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff, isFatal, sleep } from "../retry.js";
import { Code, GrpcError } from "../grpc-web.js";

/** The delays of `count` attempts, each drawn with `random` fixed. */
function delays(random, count) {
  const backoff = new Backoff(() => random);
  return Array.from({ length: count }, () => backoff.next());
}

test("100 ms doubling to a cap of 5 s, each from the upper half of its range", () => {
  assert.deepEqual(delays(0, 8), [50, 100, 200, 400, 800, 1600, 2500, 2500]);
  const highest = delays(0.999_999, 8).map(Math.round);
  assert.deepEqual(highest, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  const late = delays(0.5, 100).at(-1);
  assert.equal(late, 3750, "still capped after many attempts");
});

test("the delays are drawn at random", () => {
  const backoff = new Backoff();
  const first = Array.from({ length: 50 }, () => { backoff.reset(); return backoff.next(); });
  assert.ok(first.every((delay) => delay >= 50 && delay < 100), `${first}`);
  assert.ok(new Set(first).size > 1, "jittered");
});

test("a reset starts again from the shortest delay", () => {
  const backoff = new Backoff(() => 0);
  for (let i = 0; i < 10; i += 1) backoff.next();
  backoff.reset();
  assert.equal(backoff.next(), 50);
  assert.equal(backoff.next(), 100);
});

test("answers no retry can fix", () => {
  for (const code of [Code.INVALID_ARGUMENT, Code.UNIMPLEMENTED, Code.PERMISSION_DENIED]) {
    assert.ok(isFatal(new GrpcError(code, "")), `code ${code}`);
  }
  for (const code of [Code.UNAVAILABLE, Code.OUT_OF_RANGE, Code.DEADLINE_EXCEEDED, Code.UNAUTHENTICATED]) {
    assert.ok(!isFatal(new GrpcError(code, "")), `code ${code}`);
  }
});

test("a sleep ends early when its signal aborts", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const asleep = sleep(60_000, controller.signal);
  controller.abort();
  await asleep;
  assert.ok(performance.now() - started < 1_000);
});
