# syntax=docker/dockerfile:1
# The gateway: STELLA's public HTTP surface on port 8080 (REST, WebSocket and WebRTC audio,
# the LiveKit bridge, the playground).
# Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t stella/gateway .
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
    uv sync --frozen --no-dev --no-install-workspace --package stella-services --extra gateway
COPY contracts/ contracts/
COPY sdk/ sdk/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package stella-services --extra gateway

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/stella stella
COPY --from=build /opt/stella/venv /opt/stella/venv
# In a container the gateway listens on every interface, not only loopback.
ENV PATH=/opt/stella/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    STELLA_DATA_DIR=/var/lib/stella STELLA_READY_FILE=/tmp/stella-ready \
    STELLA_GATEWAY_HOST=0.0.0.0 STELLA_GATEWAY_PORT=8080
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["test", "-f", "/tmp/stella-ready"]
CMD ["stella", "serve", "gateway"]
