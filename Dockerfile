# The imgclf service: `imgclf serve` in a container, for the Kubernetes example in deploy/k8s.yaml.
#
# NOTE: this image cannot be built on this project's development and CI machines (no Docker
# daemon, and no network beyond package registries from the test machines); it is written to be
# built where Docker runs:
#
#   docker build -t imgclf:0.1.0 .
#   docker run --rm -p 8000:8000 -v "$PWD/runs:/runs:ro" -v imgclf-data:/data \
#       -e IMGCLF_API_KEY="$(openssl rand -hex 24)" imgclf:0.1.0
#
# The model is not baked in: mount a run directory (or a folder holding the `current` link that
# `imgclf retrain` moves to the promoted run) at /runs; the service follows the link, so a new
# model goes into service without a new image. Feedback goes to the store at /data/feedback
# (SQLite; give --store postgresql://... for several replicas, as deploy/k8s.yaml does).
#
# The pages (src/imgclf/serve/pages/*) are package data in pyproject.toml, so `pip install .` ships them.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/imgclf
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# CPU wheels of PyTorch (the default PyPI wheels bundle CUDA: gigabytes this image does not use).
RUN /opt/imgclf/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[all]"

FROM python:${PYTHON_VERSION}-slim
# libgomp: the OpenMP runtime of PyTorch's and onnxruntime's CPU kernels.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/imgclf /opt/imgclf
RUN useradd --system --uid 10001 --home-dir /data --create-home imgclf
ENV PATH=/opt/imgclf/bin:$PATH PYTHONUNBUFFERED=1 IMGCLF_CACHE_DIR=/tmp/imgclf-cache
USER imgclf
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4)"]
ENTRYPOINT ["imgclf"]
CMD ["serve", "/runs/current", "--host", "0.0.0.0", "--port", "8000", "--store", "/data/feedback"]
