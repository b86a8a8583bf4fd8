# syntax=docker/dockerfile:1
# One image for the Flink JobManager, the TaskManagers and the job submitter: Flink with the
# Kafka connector in lib/, the Prometheus reporter in plugins/, and Python with PyFlink of the
# same version plus the job's code. Build context: the repository root (see .dockerignore).
#
# Flink comes from the official image, Java with it (the JRE that image was tested with), on a
# python:3.11 base: the project's Python (pyproject's requires-python), where the Flink image
# itself would bring its distribution's. FLINK_VERSION must satisfy pyproject's apache-flink pin;
# pip below installs both "apache-flink==FLINK_VERSION" and that pin, so a mismatch fails the
# build instead of running a PyFlink client of another version than the cluster.
# PyFlink publishes Linux wheels for x86_64 only: compose builds this image for linux/amd64.
ARG FLINK_VERSION=2.3.0
ARG PYTHON_VERSION=3.11

FROM flink:${FLINK_VERSION}-java17 AS flink

# flink-connector-kafka 4.0.1-2.0 and kafka-clients 3.9.1, extracted from the PyPI wheel named in
# flink/jars.py exactly as `make setup` does for runs without Docker.
FROM python:${PYTHON_VERSION}-slim-bookworm AS connector
WORKDIR /build
COPY flink/jars.py flink/jars.py
RUN --mount=type=cache,target=/root/.cache/pip \
    python flink/jars.py

FROM python:${PYTHON_VERSION}-slim-bookworm AS requirements
WORKDIR /build
COPY pyproject.toml docker/requirements.py ./
# What flink/job.py imports; the services' other dependencies are not needed here.
RUN python requirements.py pyproject.toml --only apache-flink confluent-kafka structlog \
    pydantic-settings python-dotenv prometheus-client \
    > requirements.txt

FROM python:${PYTHON_VERSION}-slim-bookworm
ARG FLINK_VERSION
ENV JAVA_HOME=/opt/java/openjdk \
    FLINK_HOME=/opt/flink \
    FLINK_LIB_DIR=/opt/flink/lib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
ENV PATH=${FLINK_HOME}/bin:${JAVA_HOME}/bin:${PATH}
# What the official image installs for Flink's scripts (envsubst for FLINK_PROPERTIES, jemalloc
# as the allocator, snappy for compression); the same flink user and ids. Package versions are
# not pinned: the base image tag fixes the Debian release, whose updates are security fixes.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends gettext-base libjemalloc2 libsnappy1v5; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s libjemalloc.so.2 "/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so"; \
    groupadd --system --gid=9999 flink; \
    useradd --system --home-dir "${FLINK_HOME}" --uid=9999 --gid=flink flink
COPY --from=requirements /build/requirements.txt /tmp/requirements.txt
# PyFlink's own copy of the Flink jars (apache-flink-libraries) is removed: the client runs on
# the gateway of /opt/flink's `flink run`, and nothing here starts a local MiniCluster.
RUN --mount=type=cache,target=/root/.cache/pip \
    set -eux; \
    pip install -r /tmp/requirements.txt "apache-flink==${FLINK_VERSION}"; \
    pyflink_dir="$(python -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))')"; \
    rm -rf "${pyflink_dir:?}/lib" "${pyflink_dir:?}/opt" "${pyflink_dir:?}/plugins"
COPY --from=flink /opt/java/openjdk /opt/java/openjdk
COPY --from=flink /usr/local/bin/gosu /usr/local/bin/gosu
COPY --from=flink /docker-entrypoint.sh /docker-entrypoint.sh
COPY --from=flink --chown=flink:flink /opt/flink /opt/flink
COPY --from=connector --chown=flink:flink /build/.flink-lib/ /opt/flink/lib/
# The Prometheus reporter as a plugin (newer distributions ship it in plugins/, older in opt/);
# /flink-data is the checkpoint volume, owned by flink so a fresh named volume is writable.
RUN set -eux; \
    plugin_dir=/opt/flink/plugins/metrics-prometheus; \
    if ! ls "${plugin_dir}"/flink-metrics-prometheus-*.jar >/dev/null 2>&1; then \
        mkdir -p "${plugin_dir}"; \
        cp /opt/flink/opt/flink-metrics-prometheus-*.jar "${plugin_dir}/"; \
        chown -R flink:flink "${plugin_dir}"; \
    fi; \
    ls /opt/flink/lib/flink-connector-kafka.jar /opt/flink/lib/kafka-clients.jar; \
    mkdir -p /flink-data/checkpoints; \
    chown -R flink:flink /flink-data; \
    java -version; \
    flink --version; \
    rm -f /opt/flink/log/*
COPY docker/healthcheck.py /app/docker/healthcheck.py
COPY docker/flink/submit_job.py /app/docker/flink/submit_job.py
COPY services/__init__.py /app/services/__init__.py
COPY services/common /app/services/common
COPY flink /app/flink
# flink/job.py imports services.common; the python that `flink run` starts inherits PYTHONPATH.
ENV PYTHONPATH=/app
WORKDIR /opt/flink
# 8081 REST API and web UI, 6123 RPC, 6124 blob server, 9249 Prometheus reporter
EXPOSE 6123 6124 8081 9249
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["help"]
