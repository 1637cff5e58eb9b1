/**
 * pod-api.js — the PodService calls the page makes, over gRPC-Web, each
 * with the current token.
 *
 * Lists are read page by page; writes are SyncPods calls of one op each,
 * since a page cannot stream a request (the body is the op, its end the
 * half-close).
 */

import { Code, GrpcError, serverStream, unary } from "./grpc-web.js";

const PAGE_SIZE = 500;
const LIST_ATTEMPTS = 5;
const CALL_TIMEOUT_MS = 10_000;

export class PodApi {
  /** `token()` returns the bearer token to send, or null. */
  constructor(token) {
    this.token = token;
  }

  options(options) {
    return { token: this.token(), ...options };
  }

  /** Every pod of `namespace` ("" = all) and the version the list reflects. */
  async list(namespace, signal) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.listOnce(namespace, signal);
      } catch (error) {
        // The history moved past the first page's version: start again.
        if (error.code !== Code.OUT_OF_RANGE || attempt >= LIST_ATTEMPTS) throw error;
      }
    }
  }

  /** One list, page by page; every page is consistent at the first page's version. */
  async listOnce(namespace, signal) {
    const pods = [];
    let version = null;
    let continueToken = "";
    do {
      const request = { namespace, limit: PAGE_SIZE, continue_token: continueToken };
      const page = await unary("ListPods", "ListPodsRequest", request, "ListPodsResponse",
        this.options({ signal, timeoutMs: CALL_TIMEOUT_MS }));
      version ??= page.resource_version;
      for (const pod of page.pods) pods.push(pod);
      continueToken = page.continue_token;
    } while (continueToken);
    return { pods, version };
  }

  /** A watch from `request.resource_version`; `handlers`: signal, onHeaders, onMessage (a Pod). */
  watch(request, handlers) {
    return serverStream("WatchPods", "ListPodsRequest", request, "Pod", this.options(handlers));
  }

  /** A pod's log; `handlers` as for `watch`, each message a LogChunk. */
  logs(request, handlers) {
    return serverStream("GetLogs", "GetLogsRequest", request, "LogChunk", this.options(handlers));
  }

  /** Creates or updates a pod; resolves to the SyncAck (code != 0: refused, see message). */
  apply(pod) {
    return this.sync({ apply: pod });
  }

  /** Deletes a pod; resolves to the SyncAck. */
  delete(namespace, name) {
    return this.sync({ delete: { namespace, name } });
  }

  async sync(op) {
    let ack = null;
    const onMessage = (event) => { ack = event.ack ?? ack; };
    await serverStream("SyncPods", "SyncRequest", { id: 1n, ...op }, "SyncEvent",
      this.options({ timeoutMs: CALL_TIMEOUT_MS, onMessage }));
    if (!ack) throw new GrpcError(Code.INTERNAL, "the server ended the call without an ack");
    return ack;
  }
}
