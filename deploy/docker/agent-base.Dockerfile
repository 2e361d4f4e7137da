# syntax=docker/dockerfile:1
# The base of agent images: Python 3.11 with stella-agent-sdk and the `stella` command
# (agent-runner, tool-executor) from this repository's lock, in a venv that is first on
# PATH and has pip. The guide's Dockerfile (FROM python:3.11-slim, pip install -r
# requirements.txt) builds on it unchanged when this image stands in for python:3.11-slim:
#   docker build -f deploy/docker/agent-base.Dockerfile -t stella/agent-base .
#   docker buildx build --build-context python:3.11-slim=docker-image://stella/agent-base \
#       -t registry.example.com/my-custom-agent:latest examples/my-agent
# (docker-compose.yml does the same with `additional_contexts`). pip then finds the SDK
# installed, and the image can run both `python -m src.agent` and
# `stella serve tool-executor`. It stays root: the guide's Dockerfile runs apt-get.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.8
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 UV_PROJECT_ENVIRONMENT=/opt/stella/venv
WORKDIR /src
# The locked dependencies first: this layer is reused while only STELLA's code changes.
COPY pyproject.toml uv.lock ./
COPY contracts/pyproject.toml contracts/
COPY sdk/pyproject.toml sdk/
COPY services/pyproject.toml services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package stella-services
COPY contracts/ contracts/
COPY sdk/ sdk/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package stella-services \
    && uv pip install --python /opt/stella/venv/bin/python pip

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/stella/venv /opt/stella/venv
ENV PATH=/opt/stella/venv/bin:$PATH VIRTUAL_ENV=/opt/stella/venv PYTHONUNBUFFERED=1 \
    STELLA_READY_FILE=/tmp/stella-ready
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["test", "-f", "/tmp/stella-ready"]
CMD ["stella", "serve", "agent-runner"]
