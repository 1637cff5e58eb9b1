/**
 * token.js — the bearer token the page sends, and the form that asks for it.
 *
 * The token is kept for this tab's session (sessionStorage). A call the
 * server refuses as UNAUTHENTICATED shows the form and waits; entering a
 * token resumes every call that waits. The form can also be offered
 * without a refusal, to change identity (a read-only token for one that
 * may write).
 */

const TOKEN_KEY = "pod-dashboard-token";

export class TokenPrompt {
  waiting = [];

  /**
   * `form` holds `message` and `input`; `storage` keeps the token
   * (sessionStorage); `onToken()` is called after each token entered.
   */
  constructor({ form, message, input }, storage, { onToken }) {
    this.elements = { form, message, input };
    this.storage = storage;
    this.onToken = onToken;
    this.token = storage.getItem(TOKEN_KEY);
    // The CSP's form-action 'none' forbids real submissions: the page handles them.
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      input.value = "";
      this.set(token);
    });
  }

  /** Shows the form; resolves once a token is entered (or `signal` aborts). */
  refused(signal) {
    const { form, message } = this.elements;
    message.textContent = this.token ? "the server refused this token" : "this server needs a token";
    form.hidden = false;
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      signal?.addEventListener("abort", resolve, { once: true });
    });
  }

  /** Shows the form with `message`, for another token; nothing waits for it. */
  offer(message) {
    const { form, message: text, input } = this.elements;
    text.textContent = message;
    form.hidden = false;
    input.focus();
  }

  set(token) {
    this.token = token;
    this.storage.setItem(TOKEN_KEY, token);
    this.elements.form.hidden = true;
    for (const resume of this.waiting.splice(0)) resume();
    this.onToken();
  }
}
