/**
 * protobuf.js — the protobuf wire format of proto/pod.proto, for the page.
 *
 * The dashboard talks gRPC-Web (see grpc-web.js), whose messages are plain
 * protobuf. Rather than ship a generated client, this file declares the
 * messages the page uses as one data table, SCHEMA, and encodes and decodes
 * them from it. A Rust test reads the lines between the schema markers and
 * compares them with the compiled descriptor, so the table cannot drift from
 * the .proto: keep it one field per line, `name: [number, "type"],`.
 *
 * Proto3 semantics: fields at their default are not sent, and every field of
 * a decoded message is present (""/0/0n/false, [] for repeated fields, null
 * for an absent sub-message). uint64 values are BigInts both ways. Oneof
 * members are plain fields here: every oneof in pod.proto holds messages, and
 * a message field is sent whenever it is set, so "which member is set" is
 * simply "which one is not null".
 */

// schema:begin
export const SCHEMA = {
  Pod: {
    name: [1, "string"],
    namespace: [2, "string"],
    status: [3, "string"],
    replicas: [4, "int32"],
    resource_version: [5, "uint64"],
    deleted: [6, "bool"],
    bookmark: [7, "bool"],
  },
  ListPodsRequest: {
    namespace: [1, "string"],
    resource_version: [2, "uint64"],
    allow_bookmarks: [3, "bool"],
    limit: [4, "uint32"],
    continue_token: [5, "string"],
    name: [6, "string"],
  },
  ListPodsResponse: {
    pods: [1, "repeated Pod"],
    resource_version: [2, "uint64"],
    continue_token: [3, "string"],
  },
  LogChunk: {
    namespace: [1, "string"],
    pod: [2, "string"],
    lines: [3, "repeated string"],
    first_line: [4, "uint64"],
  },
  GetLogsRequest: {
    namespace: [1, "string"],
    pod: [2, "string"],
    follow: [3, "bool"],
    tail_lines: [4, "uint32"],
    from_line: [5, "uint64"],
  },
  PodRef: {
    namespace: [1, "string"],
    name: [2, "string"],
  },
  Subscribe: {
    namespace: [1, "string"],
    resource_version: [2, "uint64"],
    allow_bookmarks: [3, "bool"],
  },
  SyncRequest: {
    id: [1, "uint64"],
    apply: [2, "Pod"],
    delete: [3, "PodRef"],
    subscribe: [4, "Subscribe"],
  },
  SyncAck: {
    id: [1, "uint64"],
    code: [2, "uint32"],
    message: [3, "string"],
    pod: [4, "Pod"],
  },
  SyncEvent: {
    ack: [1, "SyncAck"],
    change: [2, "Pod"],
  },
};
// schema:end

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** The default of each scalar type, and the range an integer type accepts. */
const SCALARS = {
  string: { wire: LENGTH_DELIMITED, default: "" },
  bool: { wire: VARINT, default: false },
  int32: { wire: VARINT, default: 0, min: -(2n ** 31n), max: 2n ** 31n - 1n },
  uint32: { wire: VARINT, default: 0, min: 0n, max: 2n ** 32n - 1n },
  uint64: { wire: VARINT, default: 0n, min: 0n, max: 2n ** 64n - 1n },
};

const utf8Encoder = new TextEncoder();
// `fatal`: a proto3 string must be valid UTF-8; refuse it rather than guess.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** The fields of a message type, parsed once: `pods: [1, "repeated Pod"]`. */
const FIELDS = new Map();

function fields(typeName) {
  if (!FIELDS.has(typeName)) {
    if (!SCHEMA[typeName]) throw new Error(`unknown message type ${typeName}`);
    const parsed = Object.entries(SCHEMA[typeName]).map(([name, [number, declared]]) => {
      const repeated = declared.startsWith("repeated ");
      const type = declared.replace("repeated ", "");
      const wire = SCALARS[type]?.wire ?? LENGTH_DELIMITED;
      return { name, number, type, repeated, wire };
    });
    FIELDS.set(typeName, parsed);
  }
  return FIELDS.get(typeName);
}

// ---------------------------------------------------------------- encoding

/** Encodes `object` (snake_case keys, as in SCHEMA) as a `typeName` message. */
export function encode(typeName, object) {
  const out = [];
  for (const field of fields(typeName)) {
    const value = object?.[field.name];
    if (field.repeated) {
      for (const item of value ?? []) writeField(out, field, item);
    } else if (!isDefault(field.type, value)) {
      writeField(out, field, value);
    }
  }
  return Uint8Array.from(out);
}

function isDefault(type, value) {
  if (value === undefined || value === null) return true;
  if (!(type in SCALARS)) return false; // a set sub-message is always sent
  return value === SCALARS[type].default || value === 0 || value === 0n;
}

function writeField(out, field, value) {
  writeVarint(out, BigInt(field.number * 8 + field.wire));
  if (field.type === "string") {
    writeBytes(out, utf8Encoder.encode(value));
  } else if (field.type === "bool") {
    out.push(value ? 1 : 0);
  } else if (field.type in SCALARS) {
    writeVarint(out, checkedInteger(field, value));
  } else {
    writeBytes(out, encode(field.type, value));
  }
}

function checkedInteger(field, value) {
  const { min, max } = SCALARS[field.type];
  const integer = BigInt(value); // throws on 1.5, "x", NaN
  if (integer < min || integer > max) {
    throw new RangeError(`${field.name}: ${value} is out of range for ${field.type}`);
  }
  return integer;
}

function writeBytes(out, bytes) {
  writeVarint(out, BigInt(bytes.length));
  for (const byte of bytes) out.push(byte);
}

/** 7 bits a byte, low first; a negative int32 goes out as its 64-bit two's complement (10 bytes). */
function writeVarint(out, value) {
  let rest = BigInt.asUintN(64, value);
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
}

// ---------------------------------------------------------------- decoding

/** Decodes a `typeName` message; throws an Error on truncated or malformed input. */
export function decode(typeName, bytes) {
  return readMessage(typeName, new Reader(bytes));
}

function readMessage(typeName, reader) {
  const list = fields(typeName);
  const message = {};
  for (const field of list) message[field.name] = defaultOf(field);
  while (!reader.done()) {
    const tag = reader.varint();
    const number = Math.floor(tag / 8);
    const wire = tag % 8;
    if (number === 0) throw new Error("invalid field number 0");
    const field = list.find((f) => f.number === number);
    // Unknown fields (and a known number with an unexpected wire type) are
    // skipped: a newer server may send fields this page does not know.
    if (!field || field.wire !== wire) {
      reader.skip(wire);
    } else if (field.repeated) {
      message[field.name].push(readValue(field, reader));
    } else {
      message[field.name] = readValue(field, reader);
    }
  }
  return message;
}

function defaultOf(field) {
  if (field.repeated) return [];
  return field.type in SCALARS ? SCALARS[field.type].default : null;
}

function readValue(field, reader) {
  switch (field.type) {
    case "string":
      return utf8Decoder.decode(reader.bytes(reader.varint()));
    case "bool":
      return reader.varint64() !== 0n;
    case "int32":
      return Number(BigInt.asIntN(32, reader.varint64()));
    case "uint32":
      return Number(BigInt.asUintN(32, reader.varint64()));
    case "uint64":
      return BigInt.asUintN(64, reader.varint64());
    default:
      return readMessage(field.type, new Reader(reader.bytes(reader.varint())));
  }
}

/** A cursor over the bytes of one message. */
class Reader {
  constructor(bytes) {
    this.buffer = bytes;
    this.pos = 0;
  }

  done() {
    return this.pos >= this.buffer.length;
  }

  byte() {
    if (this.pos >= this.buffer.length) throw new Error("truncated message");
    return this.buffer[this.pos++];
  }

  bytes(length) {
    if (length > this.buffer.length - this.pos) throw new Error("truncated message");
    this.pos += length;
    return this.buffer.subarray(this.pos - length, this.pos);
  }

  /** A varint as a BigInt: exact for all 64 bits (values). */
  varint64() {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const byte = this.byte();
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
    throw new Error("varint longer than 10 bytes");
  }

  /** A varint as a Number, for tags and lengths: plain arithmetic keeps big lists fast. */
  varint() {
    let value = 0;
    for (let scale = 1; scale < 2 ** 35; scale *= 128) {
      const byte = this.byte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
    }
    throw new Error("tag or length longer than 32 bits");
  }

  skip(wire) {
    if (wire === VARINT) this.varint64();
    else if (wire === FIXED64) this.bytes(8);
    else if (wire === LENGTH_DELIMITED) this.bytes(this.varint());
    else if (wire === FIXED32) this.bytes(4);
    else throw new Error(`unsupported wire type ${wire}`);
  }
}
