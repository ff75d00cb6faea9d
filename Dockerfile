# The container job: `crawl run` with /data as its volume (docs/operations.md, "Container job").
#   docker build -t crawler .
#   docker run --rm -v crawl-data:/data -v "$PWD/seeds.txt:/seeds.txt:ro" crawler
# `make docker` / `make docker-test` build it offline with podman on a debootstrapped base.

# Any Debian-like image with Python 3.11+ and its venv module (python3 -m venv) will do. Both
# stages use the same one: the virtual environment points at the base's interpreter.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the locked wheels and the crawler, installed into /opt/venv -------------------
FROM ${PYTHON_IMAGE} AS build

# Offline builds: WHEELS names a directory of wheels in the build context and PIP_NO_INDEX=1
# keeps pip off the network (make docker: --build-arg WHEELS=build/wheelhouse). By default
# WHEELS is just the lock file, and pip downloads from the index.
ARG WHEELS=requirements.lock
ARG PIP_NO_INDEX=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_FIND_LINKS=/wheels

# Dependencies first, so that a change to the crawler's code reuses this layer. Binary wheels
# only (no compiler needed, none in the image), each file checked against the lock's hashes.
WORKDIR /src
COPY requirements.lock ./
COPY ${WHEELS} /wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-deps --only-binary=:all: --require-hashes -r requirements.lock

# The crawler, built from source with the locked setuptools. `pip check` fails the build when
# pyproject.toml needs something the lock lacks (run `make lock`). pip and setuptools are build
# tools: they leave before the environment is copied.
COPY pyproject.toml README.md ./
COPY crawler/ crawler/
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --yes --quiet setuptools pip \
 && /opt/venv/bin/crawl --version

# ---- final: the base image plus the environment, one user and /data ------------------------
FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="crawler" \
      org.opencontainers.image.description="A fast, polite, durable async web crawler as a container job: crawl run SEEDS into /data" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed unprivileged uid/gid, so a bind-mounted /data can be prepared with `chown 10001:10001`.
# /data belongs to it: a new named volume starts as a copy of it, owner included.
RUN groupadd --gid 10001 crawler \
 && useradd --no-log-init --uid 10001 --gid crawler --home-dir /data \
        --no-create-home --shell /usr/sbin/nologin crawler \
 && install -d -o crawler -g crawler -m 0750 /data

COPY --from=build /opt/venv /opt/venv

# Bytecode was compiled at install time; the environment is read-only for the crawler user.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Numeric, so a runtime can tell it is not root without reading /etc/passwd (runAsNonRoot).
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]

# dumb-init is PID 1: it forwards SIGTERM/SIGINT to crawl and exits with crawl's exit code
# (143 after `docker stop`). crawl handles being PID 1 itself once started, but a signal in the
# first moments (interpreter start-up, before its handlers exist) would be ignored by a PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dumb-init", "--", "crawl"]
CMD ["run", "/seeds.txt", "--db", "/data/crawl.db"]
