// The review page: with the API key, show the oldest queued (unsure) prediction with the model's
// top guesses; a label or a skip goes to POST /v1/review/{id} and the next item appears.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let queue = [];
  let imageUrl = null;

  async function start(event) {
    event.preventDefault();
    imgclf.setApiKey($("api-key").value);
    localStorage.setItem("imgclf-reviewer", $("reviewer").value.trim());
    try {
      const info = await imgclf.json("/v1/info");
      imgclf.fillSelect($("label-select"), info.classes);
      await next();
    } catch (error) {
      imgclf.say($("status"), error.message, "error");
    }
  }

  async function next() {
    if (!queue.length) queue = (await imgclf.json("/v1/review/queue?limit=20")).items;
    if (!queue.length) {
      $("item").hidden = true;
      $("done").hidden = false;
      imgclf.say($("status"), "");
      return;
    }
    $("done").hidden = true;
    await show(queue[0]);
  }

  async function show(item) {
    const blob = await (await imgclf.call(item.image_url)).blob();
    if (imageUrl) URL.revokeObjectURL(imageUrl);
    imageUrl = URL.createObjectURL(blob);
    $("item-image").src = imageUrl;
    $("item-image").dataset.predictionId = item.prediction_id;
    $("item-caption").textContent = `queued ${item.queued} · ${item.model_version}`;
    const buttons = item.top.map((entry) => {
      const button = imgclf.el("button", { type: "button", class: "guess", "data-label": entry.label },
        `${entry.label} (${imgclf.percent(entry.probability)})`);
      button.addEventListener("click", () => decide(item, entry.label));
      return button;
    });
    $("guesses").replaceChildren(...buttons);
    $("label-select").value = item.top[0].label;
    $("item").hidden = false;
    imgclf.say($("status"), `${queue.length} item(s) loaded`, "muted");
  }

  async function decide(item, label) {
    const form = new FormData();
    if (label === null) form.append("skip", "true");
    else form.append("label", label);
    form.append("reviewer", localStorage.getItem("imgclf-reviewer") || "reviewer");
    try {
      await imgclf.json(`/v1/review/${encodeURIComponent(item.prediction_id)}`, { method: "POST", body: form });
      imgclf.say($("status"), label === null ? "skipped" : `labelled "${label}"`, "ok");
    } catch (error) {
      imgclf.say($("status"), error.message, error.status === 409 ? "muted" : "error");
      if (error.status !== 409 && error.status !== 404) return;  // decided elsewhere meanwhile: move on
    }
    queue.shift();
    await next();
  }

  function wire() {
    $("api-key").value = imgclf.apiKey();
    $("reviewer").value = localStorage.getItem("imgclf-reviewer") || "";
    $("key-form").addEventListener("submit", start);
    $("assign").addEventListener("click", () => queue.length && decide(queue[0], $("label-select").value));
    $("skip").addEventListener("click", () => queue.length && decide(queue[0], null));
  }

  document.addEventListener("DOMContentLoaded", wire);
})();
