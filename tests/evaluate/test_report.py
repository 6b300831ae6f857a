"""The HTML report and the model card, from one full evaluation of the shared digits run
(robustness and Grad-CAM included, label issues from an existing label_issues.csv). The report
is opened in a real browser (headless Chromium) that must find every section and decode every
embedded image."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image
from runcopy import copy_run

from imgclf.evaluate.evaluate import evaluate
from imgclf.evaluate.model_card import failure_modes
from imgclf.evaluate.report import SECTIONS

LABEL_ISSUE_COLUMNS = ["rank", "path", "given_label", "suggested_label", "given_label_probability", "suggested_probability", "split"]


@pytest.fixture(scope="module")
def full(digits_run, tmp_path_factory):
    run = copy_run(digits_run, tmp_path_factory.mktemp("report") / "run")
    # label_issues.csv as `imgclf data label-issues` writes it: shown by evaluate without re-running.
    with open(run / "splits.csv", newline="") as fh:
        train = [r for r in csv.DictReader(fh) if r["split"] == "train"][:3]
    issues = [[i + 1, r["path"], r["label"], str((int(r["label"]) + 1) % 10), 0.01 * (i + 1), 0.9, "train"] for i, r in enumerate(train)]
    (run / "eval").mkdir()
    with open(run / "eval" / "label_issues.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([LABEL_ISSUE_COLUMNS, *issues])
    res = evaluate(run)
    return run, res, issues


def embedded_images(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_is_one_self_contained_file_with_every_section(full):
    run, res, issues = full
    page = res.report.read_text()
    assert res.report == run / "eval" / "report.html"
    for sid, title in SECTIONS:
        assert f'<section id="{sid}"><h2>{title}</h2>' in page
    # nothing outside the file: no links, scripts or images that point elsewhere
    assert "<link" not in page and "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count("<img") == len(re.findall(r'<img src="data:image/png;base64,', page))
    images = embedded_images(page)
    # curves, 2 confusion matrices, reliability, selective, robustness, Grad-CAM, top losses, label issues
    assert len(images) == (9 if res.sections["gradcam"] == "done" else 8)
    assert all(img.format == "PNG" and img.size[0] > 200 for img in images)

    assert res.sections["robustness"] == "done" and res.sections["gradcam"] in ("done", "no misclassified image to explain")
    robustness = json.loads((run / "eval" / "robustness.json").read_text())
    section = page.split('<section id="robustness">')[1].split("</section>")[0]
    assert f"{100 * robustness['clean_accuracy']:.2f}%" in section and robustness["worst"]["corruption"] in section
    section = page.split('<section id="label-issues">')[1].split("</section>")[0]
    assert all(row[1] in section for row in issues) and "label issues" in section and "<img" in section
    assert res.sections["label_issues"] == "shown from an earlier run of label-issues"
    section = page.split('<section id="calibration">')[1].split("</section>")[0]
    assert f"T = {res.metrics['calibration']['temperature']:.3f}" in section
    top = page.split('<section id="top-losses">')[1].split("</section>")[0]
    assert res.metrics["most_confused"] == [] or res.metrics["most_confused"][0]["true"] in top


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="needs Chromium (Debian package chromium)")
def test_report_renders_in_headless_chromium(full, tmp_path):
    _, res, _ = full
    page = res.report.read_text()
    # A copy with a probe that, once the page has loaded, lists the sections the browser found
    # and, for every image, whether it decoded (naturalWidth > 0) and at what width.
    probe = (
        "<script>window.addEventListener('load',()=>{const im=[...document.images];"
        "const p=document.createElement('pre');p.id='probe';p.textContent=JSON.stringify({"
        "sections:[...document.querySelectorAll('section')].map(s=>s.id),"
        "headings:[...document.querySelectorAll('section h2')].map(h=>h.textContent),"
        "widths:im.map(i=>i.complete?i.naturalWidth:0)});document.body.appendChild(p);});</script>"
    )
    copy = tmp_path / "probe.html"
    copy.write_text(page.replace("</body>", probe + "</body>"))
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', out)
    assert found, f"the page did not load in Chromium: {out[:500]}"
    seen = json.loads(found.group(1).replace("&quot;", '"'))
    assert seen["sections"] == [sid for sid, _ in SECTIONS]
    assert seen["headings"] == [title for _, title in SECTIONS]
    assert seen["widths"] == [img.size[0] for img in embedded_images(page)]  # every image decoded, at its size
    assert all(w > 0 for w in seen["widths"])


def test_model_card_says_what_the_model_can_and_cannot_do(full):
    run, res, issues = full
    card = (run / "model_card.md").read_text()
    m = res.metrics
    for heading in ("## Intended use", "## Training data", "## Metrics", "## Calibration", "## Subgroups", "## Robustness",
                    "## Known failure modes and limitations"):  # fmt: skip
        assert heading in card
    assert f"**{m['n']:,} images**" in card and f"{m['accuracy']:.4f}" in card
    assert "train 1,437, validation 180, test 180" in card
    assert f"T = {m['calibration']['temperature']:.4f}" in card
    assert f"**Calibration temperature**: {m['calibration']['temperature']:.4f}" in card  # the new one, not the old
    u = json.loads((run / "model" / "model.json").read_text())["unsure_threshold"]
    assert f"{u['threshold']:.4f}" in card
    robustness = json.loads((run / "eval" / "robustness.json").read_text())
    worst = max(robustness["per_corruption"], key=lambda p: p["mean_relative_drop"])
    modes = failure_modes({"metrics": m, "robustness": robustness, "calibration": m["calibration"], "label_issues": issues})
    # the worst corruption, the most confused pair and the label issues are named as failure modes
    assert any(worst["corruption"].replace("_", " ") in s for s in modes)
    if m["most_confused"]:
        pair = m["most_confused"][0]
        assert any(f"**{pair['true']}** with **{pair['predicted']}**" in s for s in modes)
    assert any("3 training images look mislabelled" in s for s in modes)
    assert all(s in card for s in modes)
