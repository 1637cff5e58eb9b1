/**
 * pod-summary.js — what the header says about the table: the count of each
 * status among the rows shown, the namespace picker, and "no pods".
 *
 * The table hands it a summary every frame; it touches the DOM only where
 * the summary changed.
 */

import { statusClass } from "./pods.js";

export class PodSummary {
  countsShown = "";
  namespacesShown = "";

  /** `counts`: the status counts; `picker`: the namespace <select>; `empty`: "no pods". */
  constructor({ counts, picker, empty }) {
    this.elements = { counts, picker, empty };
  }

  /**
   * `counts`: [status, count] pairs of the rows shown, `shown` their number,
   * `namespaces` every namespace seen, `selected` the one shown ("" = all),
   * `listed` whether a complete list has been drawn (only then may "no pods" show).
   */
  draw({ counts, shown, namespaces, selected, listed }) {
    const sorted = [...counts].sort(([a], [b]) => (a < b ? -1 : 1));
    const signature = JSON.stringify(sorted);
    if (signature !== this.countsShown) {
      this.countsShown = signature;
      this.drawCounts(sorted, shown);
    }
    const picked = JSON.stringify([selected, namespaces.size]); // namespaces are only ever added
    if (picked !== this.namespacesShown) {
      this.namespacesShown = picked;
      this.drawNamespaces(namespaces, selected);
    }
    this.elements.empty.hidden = !listed || shown > 0;
  }

  drawCounts(sorted, shown) {
    const spans = sorted.map(([status, count]) => {
      const span = document.createElement("span");
      span.className = `count ${statusClass(status)}`;
      span.dataset.status = status;
      span.textContent = `${status} ${count}`;
      return span;
    });
    const total = document.createElement("span");
    total.className = "total";
    total.dataset.total = shown;
    total.textContent = `${shown} ${shown === 1 ? "pod" : "pods"}`;
    this.elements.counts.replaceChildren(...spans, total);
  }

  drawNamespaces(namespaces, selected) {
    const { picker } = this.elements;
    const options = [...namespaces].sort().map((namespace) => new Option(namespace, namespace));
    picker.replaceChildren(new Option("All namespaces", ""), ...options);
    picker.value = selected;
  }
}
