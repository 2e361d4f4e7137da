# syntax=docker/dockerfile:1
# stt: voice activity and speech recognition per session (silero VAD, Whisper tiny.en
# through sherpa-onnx). The models are prepared at build time and baked into the image.
# Build from the repository root:
#   docker build -f deploy/docker/stt.Dockerfile -t stella/stt .
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
    uv sync --frozen --no-dev --no-install-workspace --package stella-services --extra stt
COPY contracts/ contracts/
COPY sdk/ sdk/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package stella-services --extra stt

# Whisper is converted to ONNX once, with the venv's own onnx and onnxruntime (no torch);
# only the prepared files move on.
FROM build AS models
ENV STELLA_MODELS_DIR=/opt/stella/models
RUN /opt/stella/venv/bin/stella models prepare --service stt \
    && rm -rf /opt/stella/models/.work

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/stella stella
COPY --from=build /opt/stella/venv /opt/stella/venv
COPY --from=models /opt/stella/models /opt/stella/models
ENV PATH=/opt/stella/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    STELLA_DATA_DIR=/var/lib/stella STELLA_READY_FILE=/tmp/stella-ready \
    STELLA_MODELS_DIR=/opt/stella/models
USER 10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["test", "-f", "/tmp/stella-ready"]
CMD ["stella", "serve", "stt"]
