"""llama.cpp in this process (``xllamacpp``): one model loaded once, requests served first
come, first served by a fixed number of worker threads (``concurrency``, as many as the
model has slots), a bounded number waiting.

xllamacpp calls back from the worker thread with each streamed chunk; the chunks cross to
the event loop through a queue. A callback returning True makes llama.cpp stop generating,
which is how a client that went away stops costing CPU.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Json = dict[str, Any]
_END = object()

# llama.cpp's log thresholds: 2 warnings and errors, 3 adds info (a few lines per request)
QUIET, CHATTY = 2, 3


class EngineError(Exception):
    """llama.cpp refused or failed a request; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, kind: str = "server_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


class Busy(EngineError):
    def __init__(self, waiting: int) -> None:
        super().__init__(
            429,
            f"{waiting} requests are already waiting for the local model; retry later",
            "rate_limit_error",
        )


def engine_error(body: Json) -> EngineError:
    """llama.cpp's error chunk (``{"error": {code, message, type}}``) as an exception."""
    error = body.get("error", body)
    if not isinstance(error, dict):
        return EngineError(500, str(error))
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    kind = str(error.get("type") or ("invalid_request_error" if status < 500 else "server_error"))
    return EngineError(status, str(error.get("message") or "llama.cpp failed"), kind)


class LlamaEngine:
    def __init__(
        self,
        model_path: Path,
        *,
        context: int,
        threads: int,
        concurrency: int,
        max_waiting: int,
        prompt_cache_mib: int = 1024,
        verbose: bool = False,
    ) -> None:
        self.model_path = model_path
        self.context = context
        self.threads = threads
        self.concurrency = concurrency
        self.max_waiting = max_waiting
        self.prompt_cache_mib = prompt_cache_mib
        self.verbose = verbose
        self.in_flight = 0  # requests admitted and not yet closed (waiting or generating)
        self.generating = 0  # worker threads inside llama.cpp right now
        self._count = threading.Lock()
        self._server: Any = None
        # its work queue is FIFO: requests start in the order they arrived
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm")
        self._stops: set[threading.Event] = set()

    def load(self) -> None:
        """Blocking (seconds): load the weights and warm up. Run it off the event loop, then
        call :meth:`reclaim_signals` on the main thread."""
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.context
        params.n_parallel = self.concurrency
        params.kv_unified = True  # slots share the whole context (and cached prefixes)
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.cache_prompt = True
        # llama.cpp keeps evaluated prompts in RAM (8 GiB by default) so that agents with
        # different system prompts each find theirs again; bounded on a shared machine
        params.cache_ram_mib = self.prompt_cache_mib
        params.ui = False
        params.verbosity = CHATTY if self.verbose else QUIET
        # xllamacpp also opens llama.cpp's own HTTP listener: keep it on loopback, any port
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise EngineError(500, f"llama.cpp could not load {self.model_path}: {exc}") from exc

    @staticmethod
    def reclaim_signals() -> None:
        """llama.cpp installs its own SIGINT/SIGTERM handlers while loading; put Python's
        back so the service's lifecycle hears them. Main thread only."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.getsignal(sig))

    @property
    def waiting(self) -> int:
        return max(0, self.in_flight - self.concurrency)

    async def stream(self, payload: Json) -> AsyncGenerator[Json, None]:
        """llama.cpp's chunks for a streamed chat completion (``payload["stream"]`` is True).
        Closing the iterator early stops generation at the next token."""
        server = self._server
        if server is None:
            raise EngineError(503, "the model is not loaded")
        if self.in_flight >= self.concurrency + self.max_waiting:
            raise Busy(self.waiting)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(item: Json) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, item)
            return stop.is_set()

        def run() -> None:
            try:
                if not stop.is_set():
                    with self._count:
                        self.generating += 1
                    try:
                        server.handle_chat_completions(payload, on_chunk)
                    finally:
                        with self._count:
                            self.generating -= 1
            except Exception as exc:
                log.exception("llama.cpp failed")
                loop.call_soon_threadsafe(queue.put_nowait, EngineError(500, str(exc)))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        self.in_flight += 1
        self._stops.add(stop)
        future = loop.run_in_executor(self._executor, run)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, EngineError):
                    raise item
                assert isinstance(item, dict)
                if "error" in item:
                    raise engine_error(item)
                yield item
        finally:
            stop.set()
            self._stops.discard(stop)
            future.cancel()  # still waiting in the queue: never starts
            self.in_flight -= 1

    def close(self) -> None:
        """Stop every generation, wait for the workers, and free the model."""
        for stop in list(self._stops):
            stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._server = None  # llama.cpp's destructor ends its loop and joins its thread
