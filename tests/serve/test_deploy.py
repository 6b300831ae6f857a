"""The Dockerfile and the Kubernetes example agree with the service: their probes name routes the
app serves, and their command lines are ones `imgclf serve` accepts. (Neither can be built or
applied on these machines; this is what can be checked without Docker or a cluster.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from imgclf.cli import cli
from imgclf.serve import routes_ops

ROOT = Path(__file__).resolve().parents[2]


def serve_accepts(args: list[str]) -> dict:
    """The options click parses from ``args`` (``serve ...``), raising if any is not accepted."""
    assert args[0] == "serve"
    command = cli.commands["serve"]
    with command.make_context("serve", list(args[1:]), resilient_parsing=False) as ctx:
        return ctx.params


def test_k8s_probes_use_health_and_ready():
    deployment, service = yaml.safe_load_all((ROOT / "deploy" / "k8s.yaml").read_text())
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/ready"
    served = {route.path for route in routes_ops.router.routes}
    assert {"/v1/health", "/v1/ready", "/metrics"} <= served
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    port = container["ports"][0]["containerPort"]
    params = serve_accepts(container["args"])
    assert params["port"] == port and params["host"] == "0.0.0.0" and params["workers"] == 2
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_dockerfile_runs_imgclf_serve_with_accepted_options():
    text = (ROOT / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert entry == ["imgclf"]
    params = serve_accepts(cmd)
    assert params["host"] == "0.0.0.0" and f"EXPOSE {params['port']}" in text
    assert "/v1/health" in text  # the image's HEALTHCHECK
    assert "cannot be built" in text  # says so, as the issue asks
