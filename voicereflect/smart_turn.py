"""Semantic end of turn: the smart-turn v3 audio model (BSD-2) over onnxruntime.

The model and its numpy feature code ship inside the ``pipecat-ai`` wheel, which is
installed without its dependencies; ``pipecat`` itself is never imported (its package
start-up pulls in a web framework's worth of modules), only located with ``find_spec``,
and its feature module is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from voicereflect.errors import VoiceReflectError
from voicereflect.types import SAMPLE_RATE

WINDOW_S = 8
"""The model hears the last 8 seconds of the turn (shorter turns are padded in front)."""

_FOLDER = ("audio", "turn", "smart_turn")
_MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
_INSTALL_HINT = "Install it with: .venv/bin/pip install --no-deps 'pipecat-ai>=1.14' (or run make)."


def smart_turn_folder() -> Path:
    """The folder of pipecat's smart-turn code and model, found without importing pipecat.

    Raises:
        VoiceReflectError: pipecat-ai is not installed or lacks the model.
    """
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise VoiceReflectError(f"The end-of-turn model comes with pipecat-ai, which is not installed. {_INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]).joinpath(*_FOLDER)
    if not (folder / "data" / _MODEL_FILE).is_file() or not (folder / "_whisper_features.py").is_file():
        raise VoiceReflectError(f"{folder} lacks {_MODEL_FILE}; this pipecat-ai is too old. {_INSTALL_HINT}")
    return folder


def _load_features_module(folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("voicereflect._smart_turn_features", folder / "_whisper_features.py")
    if spec is None or spec.loader is None:
        raise VoiceReflectError(f"Cannot load {folder / '_whisper_features.py'}. {_INSTALL_HINT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SmartTurnModel:
    """How likely a turn is complete, judged from how its last seconds sound (~50 ms a call).

    Args:
        threads: onnxruntime threads (one is plenty; the listener calls it at most once a pause).
    """

    def __init__(self, *, threads: int = 1) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise VoiceReflectError("The end-of-turn model needs onnxruntime. Run: pip install onnxruntime") from exc
        folder = smart_turn_folder()
        self._features: Any = _load_features_module(folder).compute_whisper_log_mel_features
        options = onnxruntime.SessionOptions()
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = max(1, min(threads, os.cpu_count() or 1))
        options.log_severity_level = 4
        path = folder / "data" / _MODEL_FILE
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"], sess_options=options
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise VoiceReflectError(f"Cannot load the end-of-turn model {path}: {exc}. {_INSTALL_HINT}") from exc

    def complete_probability(self, samples: np.ndarray) -> float:
        """Probability (0-1) that the speech in ``samples`` (16 kHz mono, ending now) is a finished turn."""
        window = SAMPLE_RATE * WINDOW_S
        audio = np.asarray(samples, dtype=np.float32).reshape(-1)[-window:]
        audio = np.pad(audio, (window - len(audio), 0))
        features = self._features(audio, do_normalize=True)
        outputs = self._session.run(None, {"input_features": features[np.newaxis].astype(np.float32)})
        return float(np.asarray(outputs[0]).reshape(-1)[0])
