/**
 * grpc-web.js — a small gRPC-Web client over fetch, for infra.PodService.
 *
 * A browser cannot speak gRPC itself (it gives pages no HTTP/2 trailers),
 * so the server also accepts gRPC-Web: a POST whose body is the framed
 * request, answered with framed messages followed by a frame of trailers
 * that carries the status. This file does that framing, and turns every way
 * a call can end into either a result or a GrpcError with a gRPC code:
 *
 * - the server's status, from a trailer frame, or from the response headers
 *   when it refused the call before any message ("trailers-only");
 * - an HTTP error (a proxy, or the server's own refusal of a request);
 * - a network failure (code UNAVAILABLE, `network: true`);
 * - an abort by the caller's AbortSignal (code CANCELLED, name "AbortError").
 *
 * Messages are encoded and decoded with protobuf.js by message type name.
 */

import { decode, encode } from "./protobuf.js";

/** The gRPC status codes, by number: CODE_NAMES[11] is "OUT_OF_RANGE". */
const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** The codes by name: Code.OUT_OF_RANGE is 11. */
export const Code = Object.freeze(Object.fromEntries(CODE_NAMES.map((name, code) => [name, code])));

export function codeName(code) {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

export class GrpcError extends Error {
  constructor(code, grpcMessage, { network = false } = {}) {
    super(`${codeName(code)}: ${grpcMessage}`);
    // Callers can treat a cancellation like any aborted fetch.
    this.name = code === Code.CANCELLED ? "AbortError" : "GrpcError";
    this.code = code;
    this.grpcMessage = grpcMessage;
    this.network = network;
  }
}

const SERVICE = "infra.PodService";
const FRAME_HEADER = 5;
const TRAILERS_FLAG = 0x80;
const COMPRESSED_FLAG = 0x01;
// Far above the server's 4 MiB message limit: a length beyond it is garbage.
const MAX_FRAME = 64 << 20;

/** One unary call: resolves to the response message. */
export async function unary(method, requestType, request, responseType, options = {}) {
  let response = null;
  await call(method, requestType, request, responseType, options, (message) => {
    response = message;
  });
  if (response === null) throw new GrpcError(Code.INTERNAL, "the server sent no response message");
  return response;
}

/**
 * One server-streaming call: `onMessage` gets each message as it arrives;
 * resolves when the stream ends OK, rejects with a GrpcError otherwise.
 * `onHeaders` is called once the server has accepted the call.
 */
export function serverStream(method, requestType, request, responseType, options = {}) {
  return call(method, requestType, request, responseType, options, options.onMessage);
}

async function call(method, requestType, request, responseType, options, onMessage) {
  const { signal: caller, timeoutMs } = options;
  // The server enforces grpc-timeout; the page's own timer (a second later)
  // covers a network that hangs.
  const timeout = timeoutMs ? AbortSignal.timeout(timeoutMs + 1000) : null;
  const signal = AbortSignal.any([caller, timeout].filter(Boolean));
  try {
    const body = encodeFrame(encode(requestType, request));
    const response = await overNetwork(send(method, body, options, signal));
    checkHead(response);
    options.onHeaders?.(response.headers);
    if (response.headers.has("grpc-status")) return; // trailers-only OK: no messages
    await readBody(response.body.getReader(), (bytes) => onMessage?.(decodeResponse(responseType, bytes)));
  } catch (error) {
    // An error thrown by the caller's own onMessage passes through unchanged.
    if (caller?.aborted) throw new GrpcError(Code.CANCELLED, "cancelled by the page");
    if (timeout?.aborted) throw new GrpcError(Code.DEADLINE_EXCEEDED, "no answer in time");
    throw error;
  }
}

function send(method, body, { token, timeoutMs }, signal) {
  const headers = {
    "content-type": "application/grpc-web+proto",
    accept: "application/grpc-web+proto",
    "x-grpc-web": "1",
  };
  if (token) headers.authorization = `Bearer ${token}`;
  if (timeoutMs) headers["grpc-timeout"] = `${Math.ceil(timeoutMs)}m`;
  return fetch(`/${SERVICE}/${method}`, { method: "POST", headers, body, signal, cache: "no-store" });
}

/** Fetch reports a failed connection as a TypeError (and nothing more precise). */
function overNetwork(promise) {
  return promise.catch((error) => {
    if (!(error instanceof TypeError)) throw error;
    throw new GrpcError(Code.UNAVAILABLE, `network error: ${error.message}`, { network: true });
  });
}

function decodeResponse(type, bytes) {
  try {
    return decode(type, bytes);
  } catch (error) {
    throw new GrpcError(Code.INTERNAL, `malformed ${type}: ${error.message}`);
  }
}

/** Throws for an HTTP error, or for a status the server put in the headers. */
function checkHead(response) {
  if (response.status !== 200) {
    const text = response.statusText ? ` ${response.statusText}` : "";
    throw new GrpcError(codeOfHttpStatus(response.status), `HTTP ${response.status}${text}`);
  }
  throwIfError(statusOf((name) => response.headers.get(name)));
}

/** gRPC's mapping of HTTP statuses to codes (doc/http-grpc-status-mapping.md). */
function codeOfHttpStatus(status) {
  const codes = { 400: Code.INTERNAL, 401: Code.UNAUTHENTICATED, 403: Code.PERMISSION_DENIED, 404: Code.UNIMPLEMENTED };
  if ([429, 502, 503, 504].includes(status)) return Code.UNAVAILABLE;
  return codes[status] ?? Code.UNKNOWN;
}

/** Reads frames off the body until the trailers, which end the call. */
async function readBody(reader, onMessage) {
  const frames = new FrameReader();
  try {
    for (;;) {
      const { done, value } = await overNetwork(reader.read());
      if (done) break;
      frames.push(value);
      for (let frame = frames.next(); frame; frame = frames.next()) {
        if (frame.flag & TRAILERS_FLAG) return throwIfError(statusOf(trailerLookup(frame.payload)));
        if (frame.flag & COMPRESSED_FLAG) throw new GrpcError(Code.INTERNAL, "compressed messages are not supported");
        onMessage(frame.payload);
      }
    }
  } finally {
    // Stops the download if we stopped early (an error, or the trailers).
    reader.cancel().catch(() => {});
  }
  throw new GrpcError(Code.UNAVAILABLE, "stream ended without status");
}

function statusOf(lookup) {
  const status = lookup("grpc-status");
  if (status === null) return null;
  const code = Number.parseInt(status, 10);
  return { code: Number.isNaN(code) ? Code.UNKNOWN : code, message: decodeGrpcMessage(lookup("grpc-message") ?? "") };
}

function throwIfError(status) {
  if (status && status.code !== Code.OK) throw new GrpcError(status.code, status.message);
}

/** A frame: flag byte, 4-byte big-endian length, message. */
export function encodeFrame(message) {
  const frame = new Uint8Array(FRAME_HEADER + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, FRAME_HEADER);
  return frame;
}

/**
 * Cuts a byte stream into frames. Fetch delivers chunks of any size: a frame
 * may span several chunks and a chunk may hold several frames, so bytes wait
 * here until a whole frame has arrived.
 */
export class FrameReader {
  constructor() {
    this.chunks = [];
    this.length = 0;
  }

  push(chunk) {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The next whole frame as `{flag, payload}`, or null until more bytes arrive. */
  next() {
    if (this.length < FRAME_HEADER) return null;
    const header = this.take(FRAME_HEADER, false);
    const size = new DataView(header.buffer, header.byteOffset).getUint32(1);
    if (size > MAX_FRAME) throw new GrpcError(Code.RESOURCE_EXHAUSTED, `frame of ${size} bytes`);
    if (this.length < FRAME_HEADER + size) return null;
    const frame = this.take(FRAME_HEADER + size, true);
    return { flag: frame[0], payload: frame.subarray(FRAME_HEADER) };
  }

  /** The first `count` bytes, copied out of the chunks; `consume` removes them. */
  take(count, consume) {
    const out = new Uint8Array(count);
    let filled = 0;
    let index = 0;
    while (filled < count) {
      const chunk = this.chunks[index];
      const part = chunk.subarray(0, count - filled);
      out.set(part, filled);
      filled += part.length;
      if (!consume) index += 1;
      else if (part.length === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(part.length);
    }
    if (consume) this.length -= count;
    return out;
  }
}

/** The trailer block, `name: value` lines, as a lookup by lower-case name. */
function trailerLookup(payload) {
  const trailers = new Map();
  for (const line of new TextDecoder().decode(payload).split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return (name) => trailers.get(name) ?? null;
}

/** grpc-message is percent-encoded; a malformed escape is kept as it is. */
function decodeGrpcMessage(text) {
  return text.replace(/(%[0-9A-Fa-f]{2})+/g, (escapes) => {
    try {
      return decodeURIComponent(escapes);
    } catch {
      return escapes;
    }
  });
}
