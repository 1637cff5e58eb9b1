/**
 * write-access.js — whether the page's current token may write, as far as
 * the page has seen, and the greyed-out write controls that show it.
 *
 * The page cannot ask the server what a token may do; it learns it from a
 * write the server refused with PERMISSION_DENIED (a read-only identity).
 * From then on the apply form and the rows' delete buttons are disabled,
 * and the notice beside them gives the server's reason and offers another
 * token. A new token may belong to an identity that can write, so entering
 * one brings the controls back. The server remains the judge: this only
 * spares the user writes that would be refused.
 */

import { Code } from "./grpc-web.js";

/** Whether a write's outcome (its ack's or its call's code) says this identity may not write. */
export function refusesWrites(code) {
  return code === Code.PERMISSION_DENIED;
}

export class WriteAccess {
  refusal = null; // the server's message, while writes are refused for this token

  /**
   * Elements: the apply `form` (every control in it is disabled), the
   * table's `rows` (the tbody: its delete buttons grey out), the `notice`
   * beside the form with its `reason` text and its `change` button (which
   * calls `onChangeToken()`). `currentToken()`: the token the page sends now.
   */
  constructor({ form, rows, notice, reason, change }, { currentToken, onChangeToken }) {
    this.elements = { form, rows, notice, reason };
    this.currentToken = currentToken;
    change.addEventListener("click", () => onChangeToken());
  }

  get allowed() {
    return this.refusal === null;
  }

  /**
   * A write sent with `token` was refused with PERMISSION_DENIED and
   * `message`. A refusal of a token the page no longer sends (a write still
   * in flight when another token was entered) says nothing of the new one.
   */
  refused(message, token) {
    if (token !== this.currentToken()) return;
    this.refusal = message;
    this.draw();
  }

  /** Another token was entered: it may write, until the server says otherwise. */
  tokenChanged() {
    if (this.allowed) return;
    this.refusal = null;
    this.draw();
  }

  draw() {
    const { form, rows, notice, reason } = this.elements;
    const readOnly = !this.allowed;
    for (const control of form.elements) control.disabled = readOnly;
    // One class on the tbody rather than a change to each of (up to 10,000)
    // rows: rows drawn later are greyed too, and it happens once per change
    // of access, never per pod.
    rows.classList.toggle("read-only", readOnly);
    reason.textContent = readOnly ? `read-only: the server refused writes for this token: ${this.refusal}` : "";
    notice.hidden = !readOnly;
  }
}
