"""The language model seam: message building (pure) and the openai client adapter.

``openai`` is imported only here. Every endpoint, embedded or remote, is reached
through the same OpenAI-compatible chat API with streaming.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlparse

from voicereflect.errors import LLMError
from voicereflect.types import Message


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAIChat:
    """A ChatModel over any OpenAI-compatible endpoint (llama.cpp, Ollama, LM Studio, vLLM, OpenAI).

    The base URL is always passed explicitly, so ``OPENAI_BASE_URL`` in the environment
    is never used, and timeouts are short instead of the client's default 600 s.

    A reply the session gave up on can still be streaming when the session ends; llama.cpp's
    server cannot stop while a request is open (its release waited for one for 30 s and more
    here), so :meth:`close` ends every open stream before the server is stopped.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        sampling: dict | None = None,
        timeout_s: float = 20.0,
        first_token_timeout_s: float = 5.0,
    ) -> None:
        """Create the client; nothing is sent until :meth:`stream`.

        Args:
            base_url: the API root, e.g. ``http://127.0.0.1:8080/v1``.
            api_key: the key the endpoint expects (any string for local servers).
            model: model name sent with each request.
            sampling: extra request fields such as ``temperature`` and ``max_tokens``.
            timeout_s: the longest a whole reply may take.
            first_token_timeout_s: the longest to wait for the first piece of text.
        """
        import openai

        self._openai = openai
        self.base_url = base_url
        self.model = model
        self.sampling = dict(sampling or {})
        self.timeout_s = timeout_s
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            max_retries=0,
            timeout=openai.Timeout(timeout_s, connect=min(3.0, first_token_timeout_s), read=first_token_timeout_s),
        )
        self._first_token_timeout_s = first_token_timeout_s
        self._open_requests = 0
        self._idle = threading.Condition()
        self._closing = False

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Yield the reply text piece by piece; raises LLMError on any failure."""
        openai = self._openai
        deadline = time.monotonic() + self.timeout_s
        payload = [{"role": m.role, "content": m.content} for m in messages]
        with self._idle:
            if self._closing:
                raise LLMError(f"The connection to the language model at {self.base_url} is closed.")
            self._open_requests += 1
        try:
            response = self._client.chat.completions.create(
                model=self.model or "default", messages=payload, stream=True, **self.sampling
            )
            finished = False
            with response:
                for chunk in response:
                    if self._closing:
                        return  # leaving the with-block closes the stream: the server stops generating
                    if not chunk.choices:
                        continue
                    piece = chunk.choices[0].delta.content
                    if piece:
                        yield piece
                    finished = finished or bool(chunk.choices[0].finish_reason)
                    if time.monotonic() > deadline:
                        raise LLMError(f"The language model at {self.base_url} took longer than {self.timeout_s:.0f} s.")
            if not finished:  # every OpenAI-compatible server ends a reply with a finish_reason
                raise LLMError(f"The language model at {self.base_url} stopped in the middle of a reply (did it crash?).")
        except openai.APITimeoutError as exc:
            raise LLMError(f"The language model at {self.base_url} did not answer in time.") from exc
        except openai.APIConnectionError as exc:
            raise LLMError(
                f"Cannot reach the language model at {self.base_url}. Is it running? Check [llm] base_url."
            ) from exc
        except openai.AuthenticationError as exc:
            raise LLMError(f"The language model at {self.base_url} refused the API key. Check [llm] api_key_env.") from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"The language model at {self.base_url} answered HTTP {exc.status_code}.") from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"The language model at {self.base_url} failed: {exc}") from exc
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken stream (bad JSON, dropped socket) is a model failure
            raise LLMError(f"The language model at {self.base_url} sent a broken reply ({type(exc).__name__}).") from exc
        finally:
            with self._idle:
                self._open_requests -= 1
                self._idle.notify_all()

    def complete(self, messages: Sequence[Message]) -> str:
        """The whole reply as one string."""
        return "".join(self.stream(messages))

    def close(self) -> None:
        """End every open request, then the client; later calls to :meth:`stream` raise LLMError.

        Each open stream ends at its next piece; a request still waiting for its first piece
        ends with it, or at the first-token timeout. Returns once none is open (bounded by that
        timeout), so a server stopped afterwards has no request left to wait for.
        """
        with self._idle:
            self._closing = True
            self._idle.wait_for(lambda: self._open_requests == 0, timeout=self._first_token_timeout_s + 1.0)
        self._client.close()
