# syntax=docker/dockerfile:1
#
# One image for both components:
#   docker run IMAGE webhook --cert ... --key ...
#   docker run IMAGE operator
#
# The base is pinned by tag (Python patch release and Debian release), not by
# digest: pin a digest for production by passing
#   --build-arg PYTHON_IMAGE=python:3.11.15-slim-bookworm@sha256:...
# Both stages use the same base, so the virtualenv's interpreter symlink
# (/opt/graceful/bin/python -> /usr/local/bin/python3.11) is valid in the final one.
#
# Runs as the numeric non-root user 65532, needs no shell (exec-form
# ENTRYPOINT), and writes nothing outside /tmp: bytecode is compiled at build
# time and PYTHONDONTWRITEBYTECODE stops Python from trying at run time, so the
# container works with readOnlyRootFilesystem and an emptyDir on /tmp.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GRACEFUL_COMPILE=1
WORKDIR /src
# A C compiler and Python's headers, in the build stage only: setup.py compiles
# the budget engine with mypyc (GRACEFUL_COMPILE=1). The python image has the
# headers; a Debian Python (the local cluster's base) needs python3.11-dev.
# Not pinned: a Debian stable release only takes security fixes.
# hadolint ignore=DL3008
RUN headers="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
    && dev="" \
    && { [ -f "$headers/Python.h" ] || dev="python3.11-dev"; } \
    && apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev ${dev:+"$dev"} \
    && rm -rf /var/lib/apt/lists/*
# Dependencies first, from the hash-checked lock: this layer is cached until
# requirements.lock changes. The build venv holds the runtime's packages too:
# mypyc type-checks the engine, which imports pydantic (whose mypy plugin
# pyproject.toml names).
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps -r requirements.lock \
    && /opt/build/bin/pip install --require-hashes --no-deps -r requirements-build.lock \
    && python -m venv /opt/graceful \
    && /opt/graceful/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml setup.py README.md ./
COPY graceful ./graceful
# The wheel is built with the pinned build tools (its engine compiled), installed
# without resolving anything again, then pip itself is removed from the runtime
# environment.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && /opt/graceful/bin/pip install --no-deps /tmp/wheels/*.whl \
    && /opt/graceful/bin/pip check \
    && /opt/graceful/bin/python -m pip uninstall --yes pip setuptools \
    && /opt/graceful/bin/python -m compileall -q -j 0 /opt/graceful

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="graceful-operator" \
      org.opencontainers.image.description="Declared, enforced and audited shutdown budgets for Kubernetes workloads" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/graceful/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
COPY --from=build /opt/graceful /opt/graceful
USER 65532:65532
WORKDIR /tmp
EXPOSE 8443
ENTRYPOINT ["/opt/graceful/bin/graceful"]
CMD ["--help"]
