"""Layer 2 of the risk check: sentence embeddings compared with curated exemplars.

The layer knows nothing about patterns, negation or past tense: the caller
(:class:`voicereflect.safety.RiskChecker`) cuts a turn into :class:`Clause` objects, marks
the past and denied ones, and :func:`windows` turns the rest into ``units`` to embed. Exemplars and the
decision rule live in ``data/risk_exemplars.toml``.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicereflect.errors import VoiceReflectError

if TYPE_CHECKING:
    from voicereflect.embeddings import MiniLMEncoder


@dataclass(frozen=True)
class Clause:
    """One clause of a turn: its original text, its normalised form (idioms cut out), and
    why it is set aside: "past" (its sentence is about the past), "denied", "story"
    (someone else's, in a show, book or the news), or ""."""

    text: str
    cleaned: str
    sentence: int
    excluded: str = ""


def windows(clauses: Sequence[Clause], *, width: int = 3, min_words: int = 3) -> list[str]:
    """The units to embed: runs of 1 to ``width`` neighbouring clauses, never across a set-aside one.

    A risky clause inside a long rambling turn is diluted in the whole-text embedding, so
    every clause (``min_words`` or more) and every window of neighbours is checked alone.
    A window whose clauses contained idioms is embedded in its cleaned form.
    """
    runs: list[list[Clause]] = [[]]
    for clause in clauses:
        if clause.excluded:
            runs.append([])
        else:
            runs[-1].append(clause)
    units: dict[str, None] = {}  # ordered and de-duplicated
    for run in runs:
        for size in range(1, width + 1):
            for start in range(len(run) - size + 1):
                window = run[start:start + size]
                if sum(len(c.cleaned.split()) for c in window) >= min_words:
                    units.setdefault(_embedding_text(window), None)
    return list(units)


def _embedding_text(window: Sequence[Clause]) -> str:
    idiom_free = all(normalise(c.text) == c.cleaned for c in window)
    return ", ".join(c.text for c in window) if idiom_free else " ".join(c.cleaned for c in window)


def normalise(text: str) -> str:
    """Lower-case, apostrophes dropped ("don't" -> "dont"), single spaces: the patterns' form."""
    text = re.sub(r"['\u2018\u2019]", "", text.lower())
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Exemplars:
    """The exemplar table: the decision rule and (category or kind, sentence) rows."""

    threshold: float
    margin: float
    neighbours: int  # scores are the mean similarity of this many nearest exemplars
    risk: tuple[tuple[str, str], ...]  # (category, sentence)
    benign: tuple[tuple[str, str], ...]  # (kind, sentence)


@lru_cache(maxsize=1)
def exemplars() -> Exemplars:
    """The packaged exemplars (``data/risk_exemplars.toml``), read once."""
    text = (resources.files("voicereflect") / "data" / "risk_exemplars.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return Exemplars(
        threshold=float(data["threshold"]),
        margin=float(data["margin"]),
        neighbours=int(data.get("neighbours", 1)),
        risk=tuple((name, line) for name, lines in data["risk"].items() for line in lines),
        benign=tuple((kind, line) for kind, lines in data["benign"].items() for line in lines),
    )


@dataclass(frozen=True)
class SemanticHit:
    """The closest risk exemplar to one unit of an utterance, and how it compares to benign ones.

    ``score`` and ``benign_score`` are mean similarities of the ``neighbours`` nearest risk
    and benign exemplars; ``category`` and ``exemplar`` are the nearest risk exemplar's.
    """

    unit: str
    category: str
    exemplar: str
    score: float
    benign_score: float

    def passes(self, table: Exemplars) -> bool:
        """Whether this hit meets the rule: close enough to risk, and clearly closer than to benign."""
        return self.score >= table.threshold and self.score - self.benign_score >= table.margin


class SemanticRiskLayer:
    """Cosine similarity of sentence embeddings to risk and benign exemplars.

    Exemplar embeddings are computed once, by :meth:`warm` or at first use (a few seconds
    on two cores). When the embedding model is not installed the layer says so once on
    stderr and never fires, so the pattern layer still protects the person.
    """

    def __init__(self, *, encoder: MiniLMEncoder | None = None) -> None:
        """Args: encoder: the sentence encoder; default: all-MiniLM-L6-v2 from its package."""
        self._encoder = encoder
        self._lock = threading.Lock()
        self._index: tuple[Any, Any] | None = None
        self._unavailable = False

    @property
    def available(self) -> bool:
        """Whether the model loaded (loads it and the exemplars if not done yet)."""
        return self._ready() is not None

    def warm(self) -> bool:
        """Load the model and encode the exemplars now, so the first check is fast.

        Safe to call from a background thread while checks run: they wait for it.

        Returns:
            Whether the layer is available.
        """
        return self.available

    def _ready(self) -> tuple[Any, Any] | None:
        with self._lock:
            if self._index is None and not self._unavailable:
                try:
                    from voicereflect.embeddings import MiniLMEncoder

                    self._encoder = self._encoder or MiniLMEncoder()
                    self._index = exemplar_index(self._encoder, exemplars())
                except Exception as exc:  # noqa: BLE001 - a broken model must never stop the pattern check
                    self._unavailable = True
                    reason = exc if isinstance(exc, (VoiceReflectError, ImportError)) else type(exc).__name__
                    print(f"voicereflect: semantic risk check off, pattern check only. {reason}", file=sys.stderr)
            return self._index

    def nearest(self, units: Sequence[str]) -> list[SemanticHit]:
        """One hit per unit, in order; empty when the model is missing or there are no units."""
        index = self._ready()
        if index is None or not units:
            return []
        risk_vectors, benign_vectors = index
        vectors = self._encoder.encode(list(units))
        risk_sims, benign_sims = vectors @ risk_vectors.T, vectors @ benign_vectors.T
        table = exemplars()
        hits = []
        for row, unit in enumerate(units):
            best = int(risk_sims[row].argmax())
            category, exemplar = table.risk[best]
            hits.append(SemanticHit(unit, category, exemplar, _top_mean(risk_sims[row], table.neighbours),
                                    _top_mean(benign_sims[row], table.neighbours)))
        return hits

    def check(self, units: Sequence[str]) -> SemanticHit | None:
        """The strongest unit that passes the rule in risk_exemplars.toml, or None."""
        table = exemplars()
        passing = [hit for hit in self.nearest(units) if hit.passes(table)]
        return max(passing, key=lambda hit: hit.score, default=None)


def exemplar_index(encoder: Any, table: Exemplars) -> tuple[Any, Any]:
    """The risk and benign exemplar embeddings, from the cache when it matches, else encoded and cached.

    Encoding the ~480 exemplars takes about 5 s on two cores, on every start; the cache
    (in the user cache folder, keyed by the model files and the exemplar texts) brings
    that to a file read. An encoder without ``identity()`` (a stand-in) is never cached.
    """
    import numpy as np

    risk, benign = [t for _, t in table.risk], [t for _, t in table.benign]
    path = _cache_path(encoder, risk, benign)
    if path is not None:
        try:
            with np.load(path) as cached:
                vectors = cached["risk"], cached["benign"]
            if vectors[0].shape[0] == len(risk) and vectors[1].shape[0] == len(benign):
                return vectors
        except (OSError, ValueError, KeyError):
            pass  # missing or damaged: encode again
    vectors = encoder.encode(risk), encoder.encode(benign)
    if path is not None:
        _save_cache(path, vectors)
    return vectors


def _cache_path(encoder: Any, risk: list[str], benign: list[str]) -> Path | None:
    identity = getattr(encoder, "identity", None)
    if identity is None:
        return None
    from platformdirs import user_cache_dir

    digest = hashlib.sha256("\x00".join([identity(), *risk, "\x01", *benign]).encode("utf-8")).hexdigest()[:24]
    return Path(user_cache_dir("voicereflect")) / f"risk-exemplars-{digest}.npz"


def _save_cache(path: Path, vectors: tuple[Any, Any]) -> None:
    """Write the cache atomically; a failure only means encoding again next time."""
    import numpy as np

    from voicereflect.storage import atomic_write, ensure_dir

    try:
        ensure_dir(path.parent, durable=False)
        atomic_write(path, lambda f: np.savez(f, risk=vectors[0], benign=vectors[1]), durable=False)
    except OSError:
        pass


def _top_mean(similarities: Any, count: int) -> float:
    """The mean of the ``count`` largest values."""
    import numpy as np

    count = max(1, min(count, len(similarities)))
    return float(np.partition(similarities, -count)[-count:].mean())


@lru_cache(maxsize=1)
def shared_layer() -> SemanticRiskLayer:
    """One model and one exemplar index per process, however many checkers are built."""
    return SemanticRiskLayer()
