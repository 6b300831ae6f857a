// The prediction page: pick or drop an image -> /v1/predict (top-k bars) and /v1/explain (Grad-CAM
// overlay); "Flag it" sends the right label with the prediction id and the image to /v1/feedback.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let current = null; // {file, prediction}
  let urls = [];

  function forget() {
    urls.forEach((u) => URL.revokeObjectURL(u));
    urls = [];
  }

  function objectUrl(blob) {
    const url = URL.createObjectURL(blob);
    urls.push(url);
    return url;
  }

  async function loadInfo() {
    try {
      const info = await imgclf.json("/v1/info");
      const m = info.model;
      let text = `${m.run} · ${m.architecture} · ${info.classes.length} classes · ${m.version}`;
      if (info.evaluation && typeof info.evaluation.accuracy === "number") {
        text += ` · test accuracy ${imgclf.percent(info.evaluation.accuracy)}`;
      }
      imgclf.say($("model-name"), text, "muted");
      imgclf.fillSelect($("flag-label"), info.classes);
    } catch (error) {
      imgclf.say($("model-name"), `model not available: ${error.message}`, "error");
      setTimeout(loadInfo, 2000);
    }
  }

  function showBars(prediction) {
    const rows = prediction.top.map((entry) => {
      const li = imgclf.el("li");
      li.append(imgclf.el("span", { class: "label" }, entry.label));
      const bar = imgclf.el("span", { class: "bar" });
      const fill = imgclf.el("span", { class: "fill" });
      fill.style.width = imgclf.percent(entry.probability);
      bar.append(fill);
      li.append(bar, imgclf.el("span", { class: "value" }, imgclf.percent(entry.probability)));
      return li;
    });
    $("bars").replaceChildren(...rows);
    $("answer").textContent = `${prediction.label} (${imgclf.percent(prediction.probability)})`;
    $("unsure").hidden = prediction.unsure !== true;
  }

  async function predict(file) {
    forget();
    current = null;
    $("result").hidden = true;
    imgclf.say($("flag-status"), "");
    imgclf.say($("status"), `asking the model about ${file.name || "your image"}...`);
    const form = new FormData();
    form.append("file", file, file.name || "image");
    try {
      const answer = await imgclf.json("/v1/predict", { method: "POST", body: form });
      const prediction = answer.predictions[0];
      current = { file, prediction };
      $("preview").src = objectUrl(file);
      $("overlay").removeAttribute("src");
      showBars(prediction);
      $("flag-label").value = prediction.label;
      $("result").hidden = false;
      imgclf.say($("status"), `answered by ${answer.model_version}`, "muted");
      explain(file, prediction);
    } catch (error) {
      imgclf.say($("status"), error.message, "error");
    }
  }

  async function explain(file, prediction) {
    const body = new FormData();
    body.append("file", file, file.name || "image");
    try {
      const response = await imgclf.call(`/v1/explain?label=${encodeURIComponent(prediction.label)}`, { method: "POST", body });
      if (current && current.prediction === prediction) $("overlay").src = objectUrl(await response.blob());
    } catch (error) {
      $("overlay-caption").textContent = `no overlay: ${error.message}`;
    }
  }

  async function flag(event) {
    event.preventDefault();
    if (!current) return;
    imgclf.setApiKey($("api-key").value);
    const form = new FormData();
    form.append("label", $("flag-label").value);
    form.append("prediction_id", current.prediction.id);
    if ($("flag-note").value.trim()) form.append("note", $("flag-note").value.trim());
    form.append("file", current.file, current.file.name || "image");
    try {
      const record = await imgclf.json("/v1/feedback", { method: "POST", body: form });
      imgclf.say($("flag-status"), `Thank you: recorded as "${record.label}" (feedback ${record.id}).`, "ok");
    } catch (error) {
      const hint = error.status === 401 || error.status === 403 ? " (enter the API key the server printed)" : "";
      imgclf.say($("flag-status"), error.message + hint, "error");
    }
  }

  function wire() {
    $("api-key").value = imgclf.apiKey();
    $("file-input").addEventListener("change", (e) => e.target.files[0] && predict(e.target.files[0]));
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer.files[0]) predict(e.dataTransfer.files[0]);
    });
    $("flag-form").addEventListener("submit", flag);
    loadInfo();
  }

  document.addEventListener("DOMContentLoaded", wire);
})();
