// Shared by the pages: talk to the JSON API, remember the API key for this browser tab, build
// elements with textContent only (labels and file names come from users: never parsed as HTML).
"use strict";

const imgclf = (() => {
  const KEY = "imgclf-api-key";

  function apiKey() {
    return sessionStorage.getItem(KEY) || "";
  }

  function setApiKey(value) {
    if (value) sessionStorage.setItem(KEY, value.trim());
  }

  // fetch with the API key (when one was given); a non-2xx answer throws its JSON "detail".
  async function call(path, options = {}) {
    const headers = new Headers(options.headers || {});
    if (apiKey()) headers.set("X-API-Key", apiKey());
    const response = await fetch(path, { ...options, headers });
    if (!response.ok) {
      let detail = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && typeof body.detail === "string") detail = body.detail;
      } catch (_) { /* not JSON: keep the status line */ }
      const error = new Error(detail);
      error.status = response.status;
      throw error;
    }
    return response;
  }

  async function json(path, options) {
    return (await call(path, options)).json();
  }

  function el(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function percent(p) {
    return `${(100 * p).toFixed(1)}%`;
  }

  function fillSelect(select, labels) {
    select.replaceChildren(...labels.map((label) => el("option", { value: label }, label)));
  }

  function say(node, text, kind = "") {
    node.textContent = text;
    node.className = kind;
  }

  return { apiKey, setApiKey, call, json, el, percent, fillSelect, say };
})();
