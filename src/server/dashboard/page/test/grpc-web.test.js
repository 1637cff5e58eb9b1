// The page's gRPC-Web client (grpc-web.js), in node: `node --test` (run by
// tests/page.rs). The frame reader directly, then whole calls over a fake
// `fetch` that delivers the response body in chunks cut where a test says.

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import { Code, FrameReader, GrpcError, encodeFrame, serverStream, unary } from "../grpc-web.js";
import { decode, encode } from "../protobuf.js";

const bytes = (...values) => Uint8Array.from(values);
const concat = (...parts) => Uint8Array.from(parts.flatMap((part) => [...part]));
const text = (string) => new TextEncoder().encode(string);

/** A trailer frame: flag 0x80, then `name: value` lines. */
function trailerFrame(lines) {
  const frame = encodeFrame(text(lines.map((line) => `${line}\r\n`).join("")));
  frame[0] = 0x80;
  return frame;
}

/** Every frame the reader has whole, as `[flag, [...payload]]`. */
function drain(reader) {
  const frames = [];
  for (let frame = reader.next(); frame; frame = reader.next()) frames.push([frame.flag, [...frame.payload]]);
  return frames;
}

describe("frames", () => {
  test("a frame is a flag, a big-endian length and the message", () => {
    assert.deepEqual(encodeFrame(bytes(7, 8, 9)), bytes(0, 0, 0, 0, 3, 7, 8, 9));
    assert.deepEqual(encodeFrame(new Uint8Array(300)).subarray(0, 5), bytes(0, 0, 0, 0x01, 0x2c));
  });

  test("a whole frame in one chunk", () => {
    const reader = new FrameReader();
    reader.push(encodeFrame(bytes(1, 2)));
    assert.deepEqual(drain(reader), [[0, [1, 2]]]);
    assert.equal(reader.next(), null);
  });

  test("several frames in one chunk, the trailers last", () => {
    const reader = new FrameReader();
    const trailers = trailerFrame(["grpc-status: 0"]);
    reader.push(concat(encodeFrame(bytes(1)), encodeFrame(bytes()), encodeFrame(bytes(2, 3)), trailers));
    assert.deepEqual(drain(reader), [
      [0, [1]],
      [0, []], // a message at its defaults is empty
      [0, [2, 3]],
      [0x80, [...trailers.subarray(5)]],
    ]);
  });

  test("frames split across chunks, at every byte", () => {
    const stream = concat(encodeFrame(bytes(1, 2, 3)), encodeFrame(bytes(4)), trailerFrame(["grpc-status: 0"]));
    const whole = new FrameReader();
    whole.push(stream);
    const expected = drain(whole);
    assert.equal(expected.length, 3);
    for (let cut = 1; cut < stream.length; cut += 1) {
      for (const size of [cut, 1]) {
        // Chunks of `size` bytes after a first of `cut`: a header, a length or a payload split anywhere.
        const reader = new FrameReader();
        const frames = [];
        reader.push(stream.subarray(0, cut));
        frames.push(...drain(reader));
        for (let at = cut; at < stream.length; at += size) {
          reader.push(stream.subarray(at, at + size));
          frames.push(...drain(reader));
        }
        assert.deepEqual(frames, expected, `first chunk ${cut}, then ${size} at a time`);
        assert.equal(reader.length, 0, "nothing left over");
      }
    }
  });

  test("a truncated frame waits for the rest of its bytes", () => {
    const reader = new FrameReader();
    const frame = encodeFrame(bytes(1, 2, 3, 4));
    reader.push(frame.subarray(0, 3)); // part of the header
    assert.equal(reader.next(), null);
    reader.push(frame.subarray(3, 7)); // the header and part of the message
    assert.equal(reader.next(), null);
    assert.equal(reader.next(), null, "asking again takes nothing");
    reader.push(bytes()); // an empty chunk changes nothing
    assert.equal(reader.next(), null);
    reader.push(frame.subarray(7));
    assert.deepEqual(drain(reader), [[0, [1, 2, 3, 4]]]);
  });

  test("a length no server sends is refused", () => {
    const reader = new FrameReader();
    reader.push(bytes(0, 0xff, 0xff, 0xff, 0xff));
    assert.throws(() => reader.next(), (error) => error instanceof GrpcError && error.code === Code.RESOURCE_EXHAUSTED);
  });
});

// ---------------------------------------------------------------- calls

const realFetch = globalThis.fetch;
afterEach(() => { globalThis.fetch = realFetch; });

/**
 * Answers the next call with `chunks` as its body (or with `init.error`
 * thrown by fetch), and records the request.
 */
function answer(chunks, { status = 200, headers = {}, error = null } = {}) {
  const seen = {};
  globalThis.fetch = async (url, request) => {
    Object.assign(seen, { url, ...request });
    if (error) throw error;
    const queue = [...chunks];
    const reader = {
      read: async () => (queue.length ? { done: false, value: queue.shift() } : { done: true, value: undefined }),
      cancel: async () => { seen.cancelled = true; },
    };
    return { status, statusText: "", headers: new Headers(headers), body: { getReader: () => reader } };
  };
  return seen;
}

const pod = (name, version) => ({ name, namespace: "dev", status: "Running", replicas: 1, resource_version: version, deleted: false, bookmark: false });
const podFrame = (name, version) => encodeFrame(encode("Pod", pod(name, version)));

/** A watch's messages, or the error that ended it. */
async function watch() {
  const pods = [];
  const onMessage = (message) => pods.push(message);
  try {
    await serverStream("WatchPods", "ListPodsRequest", { namespace: "dev" }, "Pod", { onMessage });
    return { pods };
  } catch (error) {
    return { pods, error };
  }
}

describe("calls", () => {
  test("the request is one framed message, with the token and the deadline", async () => {
    const seen = answer([trailerFrame(["grpc-status: 0"])]);
    await serverStream("WatchPods", "ListPodsRequest", { namespace: "dev", resource_version: 7n }, "Pod",
      { token: "t0k", timeoutMs: 1500 });
    assert.equal(seen.url, "/infra.PodService/WatchPods");
    assert.equal(seen.method, "POST");
    assert.equal(seen.headers["content-type"], "application/grpc-web+proto");
    assert.equal(seen.headers.authorization, "Bearer t0k");
    assert.equal(seen.headers["grpc-timeout"], "1500m");
    assert.equal(seen.body[0], 0);
    assert.deepEqual(decode("ListPodsRequest", seen.body.subarray(5)).resource_version, 7n);
  });

  test("messages cut across chunks arrive whole, in order, then the trailers end the call", async () => {
    const stream = concat(podFrame("a", 1n), podFrame("b", 2n), trailerFrame(["grpc-status: 0"]));
    const chunks = [stream.subarray(0, 2), stream.subarray(2, 20), stream.subarray(20)];
    const seen = answer(chunks);
    const { pods, error } = await watch();
    assert.equal(error, undefined);
    assert.deepEqual(pods, [pod("a", 1n), pod("b", 2n)]);
    assert.ok(seen.cancelled, "the body is released");
  });

  test("the trailer frame's status is the call's, its message percent-decoded", async () => {
    answer([concat(podFrame("a", 1n), trailerFrame(["Grpc-Status: 11", "grpc-message: too%20old%3A%20list%20again"]))]);
    const { pods, error } = await watch();
    assert.equal(pods.length, 1);
    assert.ok(error instanceof GrpcError);
    assert.equal(error.code, Code.OUT_OF_RANGE);
    assert.equal(error.grpcMessage, "too old: list again");
    assert.equal(error.message, "OUT_OF_RANGE: too old: list again");
  });

  test("a body cut off before the trailers is UNAVAILABLE", async () => {
    const frame = podFrame("a", 1n);
    answer([frame, frame.subarray(0, 6)]); // one whole message, then a truncated frame
    const { pods, error } = await watch();
    assert.equal(pods.length, 1);
    assert.equal(error.code, Code.UNAVAILABLE);
    assert.match(error.message, /stream ended without status/);
  });

  test("a refusal in the headers (trailers-only)", async () => {
    answer([], { headers: { "grpc-status": "16", "grpc-message": "no token" } });
    const { error } = await watch();
    assert.equal(error.code, Code.UNAUTHENTICATED);
    assert.equal(error.grpcMessage, "no token");
  });

  test("an HTTP error and a network failure", async () => {
    answer([], { status: 503 });
    assert.equal((await watch()).error.code, Code.UNAVAILABLE);
    answer([], { error: new TypeError("Failed to fetch") });
    const { error } = await watch();
    assert.equal(error.code, Code.UNAVAILABLE);
    assert.equal(error.network, true);
  });

  test("a compressed message or a malformed one is INTERNAL", async () => {
    const compressed = podFrame("a", 1n);
    compressed[0] = 0x01;
    answer([compressed]);
    assert.equal((await watch()).error.code, Code.INTERNAL);
    answer([concat(encodeFrame(bytes(0x0a, 0x09)), trailerFrame(["grpc-status: 0"]))]);
    const { error } = await watch();
    assert.equal(error.code, Code.INTERNAL);
    assert.match(error.message, /malformed Pod/);
  });

  test("a unary call resolves to its one message", async () => {
    const list = { pods: [pod("a", 1n)], resource_version: 4n, continue_token: "" };
    answer([concat(encodeFrame(encode("ListPodsResponse", list)), trailerFrame(["grpc-status: 0"]))]);
    assert.deepEqual(await unary("ListPods", "ListPodsRequest", {}, "ListPodsResponse"), list);
  });

  test("an abort by the caller is CANCELLED", async () => {
    answer([podFrame("a", 1n)]);
    const controller = new AbortController();
    const call = serverStream("WatchPods", "ListPodsRequest", {}, "Pod", {
      signal: controller.signal,
      onMessage: () => controller.abort(),
    });
    // The fake body ends after the message: the abort is what the call reports.
    await assert.rejects(call, (error) => error.code === Code.CANCELLED && error.name === "AbortError");
  });
});
