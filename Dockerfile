# ai-broker image: every service of compose.yaml (workers, Flower, the simulated provider) runs
# from it. No configuration and no secret is baked in: the catalog is mounted at run time
# (AIBROKER_CONFIG) and provider keys arrive as environment variables.

# --- build: the package and its dependencies in a virtualenv ------------------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/aibroker
WORKDIR /src
# .dockerignore lets only the package sources and their metadata in.
COPY . .
RUN /opt/aibroker/bin/pip install .

# --- runtime: the virtualenv only, no sources, no build tools -----------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/aibroker/bin:$PATH \
    AIBROKER_CONFIG=/etc/aibroker/aibroker.yaml

COPY --from=build /opt/aibroker /opt/aibroker

# An unprivileged user with no login shell. The code and the (mounted) catalog stay read-only
# for it; the working directory is an empty root-owned folder, so nothing shadows the package.
RUN groupadd --system --gid 10001 aibroker \
    && useradd --system --uid 10001 --gid aibroker --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin aibroker \
    && mkdir -p /etc/aibroker /app

WORKDIR /app
USER aibroker:aibroker

# 5555: Flower; 8900: the simulated provider (demo profile). Workers listen on nothing.
EXPOSE 5555 8900

# compose.yaml gives each service its command: `aibroker worker --stage ...`,
# `celery -A broker.app flower`, `aibroker upstream ...`.
CMD ["aibroker", "--help"]
