// The page's protobuf codec (protobuf.js), in node: `node --test` (run by
// tests/page.rs). Its field numbers and types are checked against the
// compiled descriptor by tests/grpc_web.rs; these tests check the wire format.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { SCHEMA, decode, encode } from "../protobuf.js";

const bytes = (...values) => Uint8Array.from(values);

/**
 * A `type` message as decode returns it, with every field set: scalars off
 * their default, two items in each repeated field, and sub-messages set down
 * to `depth` 2 (below it, absent: null, or [] when repeated).
 */
function sample(type, depth = 0) {
  const values = {
    string: "ünïcode ✓ 名前",
    bool: true,
    int32: -123_456,
    uint32: 2 ** 32 - 1,
    uint64: 2n ** 64n - 1n,
  };
  const message = {};
  for (const [name, [, declared]] of Object.entries(SCHEMA[type])) {
    const repeated = declared.startsWith("repeated ");
    const field = declared.replace("repeated ", "");
    const value = field in values ? values[field] : depth < 2 ? sample(field, depth + 1) : null;
    message[name] = repeated ? (value === null ? [] : [value, value]) : value;
  }
  return message;
}

describe("round trips", () => {
  for (const type of Object.keys(SCHEMA)) {
    test(`${type} with every field set`, () => {
      const message = sample(type);
      assert.deepEqual(decode(type, encode(type, message)), message);
    });
  }

  test("the messages the page sends and reads", () => {
    const pod = { name: "web", namespace: "dev", status: "Running", replicas: 3, resource_version: 42n, deleted: false, bookmark: false };
    const list = { pods: [pod, { ...pod, name: "db", resource_version: 7n }], resource_version: 9n, continue_token: "abc" };
    assert.deepEqual(decode("ListPodsResponse", encode("ListPodsResponse", list)), list);
    const ack = { id: 1n, code: 6, message: "pod dev/web exists", pod };
    assert.deepEqual(decode("SyncEvent", encode("SyncEvent", { ack })), { ack, change: null });
    const sync = decode("SyncRequest", encode("SyncRequest", { id: 1n, delete: { namespace: "dev", name: "web" } }));
    assert.deepEqual(sync, { id: 1n, apply: null, delete: { namespace: "dev", name: "web" }, subscribe: null });
    const chunk = { namespace: "dev", pod: "web", lines: ["one", "", "<b>three</b>"], first_line: 12n };
    assert.deepEqual(decode("LogChunk", encode("LogChunk", chunk)), chunk);
  });
});

describe("the wire format", () => {
  test("is protobuf's: tag, then a varint or a length and bytes", () => {
    // Field 1 (string "a"), field 4 (int32 150: the encoding guide's example).
    assert.deepEqual(encode("Pod", { name: "a", replicas: 150 }), bytes(0x0a, 0x01, 0x61, 0x20, 0x96, 0x01));
    // A sub-message is length-delimited: SyncRequest.delete is field 3.
    assert.deepEqual(encode("SyncRequest", { delete: { name: "x" } }), bytes(0x1a, 0x03, 0x12, 0x01, 0x78));
  });

  test("fields at their default are not sent, and decode to their default", () => {
    const defaults = { name: "", namespace: "", status: "", replicas: 0, resource_version: 0n, deleted: false, bookmark: false };
    assert.deepEqual(encode("Pod", defaults), bytes());
    assert.deepEqual(encode("Pod", {}), bytes());
    assert.deepEqual(decode("Pod", bytes()), defaults);
    assert.deepEqual(decode("ListPodsResponse", bytes()), { pods: [], resource_version: 0n, continue_token: "" });
    assert.deepEqual(decode("SyncEvent", bytes()), { ack: null, change: null });
  });

  test("a set sub-message is sent even when empty", () => {
    assert.deepEqual(encode("SyncEvent", { ack: {} }), bytes(0x0a, 0x00));
    assert.deepEqual(decode("SyncEvent", bytes(0x0a, 0x00)).ack.pod, null);
  });

  test("an unknown message type is an error", () => {
    assert.throws(() => encode("Nope", {}), /unknown message type Nope/);
  });
});

describe("varints", () => {
  const version = (value) => encode("Pod", { resource_version: value }).subarray(1); // after the tag

  test("uint64 is exact over all 64 bits, as a BigInt", () => {
    assert.deepEqual(version(2n ** 64n - 1n), bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
    assert.deepEqual(version(1n), bytes(0x01));
    assert.deepEqual(version(127n), bytes(0x7f));
    assert.deepEqual(version(128n), bytes(0x80, 0x01));
    for (const value of [1n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]) {
      const pod = decode("Pod", encode("Pod", { resource_version: value }));
      assert.equal(pod.resource_version, value);
      assert.equal(typeof pod.resource_version, "bigint");
    }
  });

  test("a Number is taken for a uint64 when it is a whole number", () => {
    assert.equal(decode("Pod", encode("Pod", { resource_version: 5 })).resource_version, 5n);
    assert.throws(() => encode("Pod", { resource_version: 1.5 }), RangeError);
  });

  test("a negative int32 goes out as 10 bytes and comes back negative", () => {
    const minusOne = encode("Pod", { replicas: -1 });
    assert.deepEqual(minusOne, bytes(0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
    assert.equal(decode("Pod", minusOne).replicas, -1);
    for (const value of [-(2 ** 31), 2 ** 31 - 1, -7]) {
      assert.equal(decode("Pod", encode("Pod", { replicas: value })).replicas, value);
    }
  });

  test("uint32 is a Number, up to 2^32 - 1", () => {
    const limit = encode("ListPodsRequest", { limit: 2 ** 32 - 1 });
    assert.deepEqual(limit, bytes(0x20, 0xff, 0xff, 0xff, 0xff, 0x0f));
    assert.equal(decode("ListPodsRequest", limit).limit, 2 ** 32 - 1);
  });

  test("values out of a type's range are refused, not wrapped", () => {
    assert.throws(() => encode("ListPodsRequest", { limit: 2 ** 32 }), RangeError);
    assert.throws(() => encode("ListPodsRequest", { limit: -1 }), RangeError);
    assert.throws(() => encode("Pod", { replicas: 2 ** 31 }), RangeError);
    assert.throws(() => encode("Pod", { resource_version: 2n ** 64n }), RangeError);
    assert.throws(() => encode("Pod", { resource_version: -1n }), RangeError);
  });

  test("a varint longer than 10 bytes is malformed", () => {
    const long = bytes(0x28, ...Array(10).fill(0xff), 0x01);
    assert.throws(() => decode("Pod", long), /varint longer than 10 bytes/);
  });
});

describe("unknown fields", () => {
  const known = encode("Pod", { name: "web", resource_version: 3n });

  test("are skipped, whatever their wire type", () => {
    const unknown = bytes(
      0x98, 0x06, 0x96, 0x01, // field 99, varint 150
      0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, // field 100, fixed64
      0xaa, 0x06, 0x03, 0x61, 0x62, 0x63, // field 101, length-delimited "abc"
      0xb5, 0x06, 1, 2, 3, 4, // field 102, fixed32
    );
    for (const message of [bytes(...unknown, ...known), bytes(...known, ...unknown)]) {
      const pod = decode("Pod", message);
      assert.equal(pod.name, "web");
      assert.equal(pod.resource_version, 3n);
      assert.equal(pod.status, "");
    }
  });

  test("a known number with another wire type is skipped too", () => {
    // Field 1 (name, a string) sent as a varint.
    assert.equal(decode("Pod", bytes(0x08, 0x05, ...known)).name, "web");
  });

  test("inside a sub-message as well", () => {
    const ack = bytes(0x08, 0x01, 0x98, 0x06, 0x01); // id 1, field 99
    const event = decode("SyncEvent", bytes(0x0a, ack.length, ...ack));
    assert.equal(event.ack.id, 1n);
  });
});

describe("malformed input", () => {
  test("a truncated message", () => {
    const whole = encode("Pod", { name: "web", resource_version: 300n });
    for (let cut = 1; cut < whole.length; cut += 1) {
      if (cut === 5) continue; // between two fields: a shorter, valid message
      assert.throws(() => decode("Pod", whole.subarray(0, cut)), /truncated message/, `cut at ${cut}`);
    }
  });

  test("a length past the end of a sub-message", () => {
    assert.throws(() => decode("SyncEvent", bytes(0x0a, 0x05, 0x08)), /truncated message/);
  });

  test("field number 0, groups, and invalid UTF-8", () => {
    assert.throws(() => decode("Pod", bytes(0x00, 0x01)), /invalid field number 0/);
    assert.throws(() => decode("Pod", bytes(0x9b, 0x06)), /unsupported wire type 3/);
    assert.throws(() => decode("Pod", bytes(0x0a, 0x02, 0xc3, 0x28)), TypeError);
  });
});
