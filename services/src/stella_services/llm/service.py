"""The llm service (``stella serve llm``): loads the local model once, then serves OpenAI's
chat-completion API on ``STELLA_LLM_HOST:STELLA_LLM_PORT`` (127.0.0.1:8090) with uvicorn,
inside the service's own event loop. It needs no bus: agents reach it over HTTP with
``OPENAI_BASE_URL=http://127.0.0.1:8090/v1``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from stella_services.llm.api import create_app
from stella_services.llm.chat import Chat
from stella_services.llm.engine import EngineError, LlamaEngine
from stella_services.llm.prompt import Defaults
from stella_services.llm.settings import LlmSettings
from stella_services.models import catalog
from stella_services.models.catalog import ModelPreparationError
from stella_services.runtime.lifecycle import ConfigurationError

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: the service lifecycle owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def resolve_model(settings: LlmSettings) -> tuple[Path, str]:
    """(GGUF file, model id) from the settings; a clear error if it is not there."""
    if settings.llm_model_path is not None:
        path = settings.llm_model_path
        if not path.is_file():
            raise ConfigurationError(f"STELLA_LLM_MODEL_PATH {path} is not a file")
        return path, path.stem
    weights = catalog.LLMS.get(settings.llm_model)
    if weights is None:
        raise ConfigurationError(
            f"STELLA_LLM_MODEL={settings.llm_model!r} is not one of {sorted(catalog.LLMS)}"
        )
    try:
        folder = catalog.model_path(weights.spec)
    except ModelPreparationError as exc:
        raise ConfigurationError(str(exc)) from None
    return folder / weights.spec.files[0], weights.spec.name


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


class LlmService:
    name = "llm"

    def __init__(self, settings: LlmSettings | None = None) -> None:
        self.settings = settings or LlmSettings()
        self.engine: LlamaEngine | None = None
        self.model_id = ""
        self._server: _Uvicorn | None = None
        self._serving: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        assert self._socket is not None
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}/v1"

    async def start(self) -> None:
        s = self.settings
        path, self.model_id = resolve_model(s)
        self._socket = bind(s.llm_host, s.llm_port)  # before loading: a taken port fails fast
        engine = LlamaEngine(
            path,
            context=s.llm_context,
            threads=s.llm_threads,
            concurrency=s.llm_concurrency,
            max_waiting=s.llm_max_waiting,
            prompt_cache_mib=s.llm_prompt_cache_mib,
            verbose=s.log_level.upper() == "DEBUG",
        )
        started = time.monotonic()
        try:
            await asyncio.get_running_loop().run_in_executor(None, engine.load)
        except EngineError as exc:
            raise ConfigurationError(exc.message) from None
        engine.reclaim_signals()
        self.engine = engine
        log.info("%s loaded in %.1f s", self.model_id, time.monotonic() - started)
        defaults = Defaults(s.llm_max_tokens, s.llm_temperature, s.llm_seed)
        chat = Chat(engine, self.model_id, defaults)
        app = create_app(chat, int(time.time()))
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
        )
        self._server = _Uvicorn(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped it
                raise ConfigurationError("the HTTP server stopped while starting")
            await asyncio.sleep(0.02)
        log.info("OpenAI-compatible API on %s (model %s)", self.base_url, self.model_id)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._serving is not None:
            with contextlib.suppress(Exception):
                await self._serving
        if self.engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.engine.close)
        if self._socket is not None:
            self._socket.close()
