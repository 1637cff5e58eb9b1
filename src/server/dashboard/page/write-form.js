/**
 * write-form.js — the page's writes: the apply form and its delete button,
 * and the table's rows (a click fills the form, a name opens its log, a ✕
 * deletes the pod). Each write shows its outcome; a refusal shows the
 * server's reason verbatim. Only the latest write's outcome is shown. A
 * refusal with PERMISSION_DENIED (this identity may not write) is also
 * handed on, so that the page can grey its writes out (write-access.js).
 */

import { Code, codeName } from "./grpc-web.js";
import { keyOf } from "./pods.js";
import { refusesWrites } from "./write-access.js";

export class WriteForm {
  writes = 0;

  /**
   * Elements: the `form` and its `namespace`, `name`, `status` and
   * `replicas` inputs, the `deleteButton`, the `result` line, and the
   * table's `rows` (the tbody). `api`: a PodApi. Callbacks: `podAt(key)`
   * the pod of a row, `openLog(namespace, name)`, `onUnauthenticated()`
   * when the server asks for a token, `onWritesRefused(message, token)`
   * when it refuses a write sent with `token` as PERMISSION_DENIED, and
   * `mayWrite()`, false while the page knows its writes would be refused.
   */
  constructor(elements, api, { podAt, openLog, onUnauthenticated, onWritesRefused, mayWrite }) {
    this.elements = elements;
    this.api = api;
    this.on = { unauthenticated: onUnauthenticated, writesRefused: onWritesRefused };
    this.mayWrite = mayWrite;
    // The CSP's form-action 'none' forbids real submissions: the page handles them.
    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const pod = this.pod();
      this.write("applied", async () => {
        if (!Number.isInteger(pod.replicas)) throw new Error("replicas must be a whole number");
        return api.apply(pod);
      });
    });
    elements.deleteButton.addEventListener("click", () => {
      const { namespace, name } = this.pod();
      this.write("deleted", () => api.delete(namespace, name));
    });
    elements.rows.addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      const pod = row && podAt(row.dataset.key);
      if (!pod) return;
      if (event.target.closest("button.delete-pod")) {
        this.write("deleted", () => api.delete(pod.namespace, pod.name));
        return;
      }
      this.fill(pod);
      if (event.target.closest("button.pod-name")) openLog(pod.namespace, pod.name);
    });
  }

  /** The namespace a new pod goes to by default: the one shown ("" = all). */
  setNamespace(namespace) {
    this.elements.namespace.value = namespace || "default";
  }

  /** The pod the form describes. */
  pod() {
    const { namespace, name, status, replicas } = this.elements;
    const count = replicas.value.trim();
    return {
      namespace: namespace.value.trim(),
      name: name.value.trim(),
      status: status.value.trim(),
      replicas: count === "" ? 0 : Number(count),
    };
  }

  fill(pod) {
    const { namespace, name, status, replicas } = this.elements;
    namespace.value = pod.namespace;
    name.value = pod.name;
    status.value = pod.status;
    replicas.value = pod.replicas;
  }

  /** Runs a write (a function returning a SyncAck) and shows its outcome. */
  async write(verb, send) {
    // A disabled button cannot be clicked, but a greyed row's delete
    // button can still be reached from the keyboard.
    if (!this.mayWrite()) return;
    const id = (this.writes += 1);
    const token = this.api.token(); // the token this write is sent with
    let text;
    let code;
    try {
      const ack = await send();
      code = ack.code;
      text = code === Code.OK
        ? `${verb} ${keyOf(ack.pod)} (version ${ack.pod.resource_version})`
        : ack.message || codeName(ack.code); // the server's reason, verbatim
    } catch (error) {
      code = error.code;
      if (code === Code.UNAUTHENTICATED) this.on.unauthenticated();
      text = error.grpcMessage ?? error.message;
    }
    // The server refuses a write to a read-only identity in the op's ack
    // (the call itself ends OK); a refusal of the whole call means the same.
    if (refusesWrites(code)) this.on.writesRefused(text, token);
    const ok = code === Code.OK;
    if (id !== this.writes) return;
    const { result } = this.elements;
    result.dataset.outcome = ok ? "ok" : "error";
    result.textContent = text;
  }
}
