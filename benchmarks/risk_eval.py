"""Benchmark: recall and false alarms of the risk check on the evaluation sets.

Each set is a TOML file with ``[[risky]] text, category`` and ``[[benign]] text, kind``:

- ``dev``: tests/data/risk_eval_dev.toml, tuned on;
- ``heldout``: tests/data/risk_eval_heldout.toml (v1), looked at, so also a development set;
- ``heldout2``: tests/data/risk_eval_heldout2.toml (v2), measured blind once in session 1,
  then looked at, so also a development set now;
- ``heldout3``: tests/data/risk_eval_heldout3.toml (v3), measured blind once in session 2
  (recall 0.911, false alarms 0.250), then looked at, so also a development set now;
- ``heldout4``: tests/data/risk_eval_heldout4.toml (v4), written by a helper who never saw
  the detector or the other sets: blind. Measure it only once the patterns, exemplars
  and thresholds are final, and never tune on it.

Prints, per set: recall (risky flagged) and false-alarm rate (benign flagged) for the
pattern layer alone and for both layers, which layer fired, per category and kind, every
miss and false alarm; then a Markdown table ready for the README. The issue's target:
recall >= 0.95 and false alarms <= 0.10 on a set never tuned on.

    python benchmarks/risk_eval.py                                      # all five sets
    python benchmarks/risk_eval.py --sets dev heldout heldout2 heldout3 --sweep   # development only
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicereflect.safety import RiskChecker, check_patterns, split_units  # noqa: E402
from voicereflect.semantic_risk import SemanticRiskLayer  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
FILES = {
    "dev": DATA / "risk_eval_dev.toml",
    "heldout": DATA / "risk_eval_heldout.toml",
    "heldout2": DATA / "risk_eval_heldout2.toml",
    "heldout3": DATA / "risk_eval_heldout3.toml",
    "heldout4": DATA / "risk_eval_heldout4.toml",
}
DEVELOPMENT = ("dev", "heldout", "heldout2", "heldout3")
LABELS = {"dev": "dev (tuned on)", "heldout": "held-out v1 (looked at, now dev)",
          "heldout2": "held-out v2 (looked at, now dev)", "heldout3": "held-out v3 (looked at, now dev)",
          "heldout4": "held-out v4 (blind)"}


def load(path: Path) -> tuple[list[dict], list[dict]]:
    """(risky items, benign items) of one eval file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return data.get("risky", []), data.get("benign", [])


def rate(flags: list[bool]) -> str:
    """'0.950 (19/20)'."""
    return f"{sum(flags) / len(flags):.3f} ({sum(flags)}/{len(flags)})" if flags else "n/a"


def _share(flags: list[bool]) -> float:
    return sum(flags) / max(1, len(flags))


def report(name: str, path: Path, checker: RiskChecker) -> dict[str, float]:
    """Print the figures for one file; return recall and false alarms, pattern-only and both layers."""
    risky, benign = load(path)
    started = time.perf_counter()
    risky_results = [checker.check(item["text"]) for item in risky]
    benign_results = [checker.check(item["text"]) for item in benign]
    per_check_ms = (time.perf_counter() - started) / max(1, len(risky) + len(benign)) * 1000
    recall = [r.risk for r in risky_results]
    alarms = [r.risk for r in benign_results]
    pattern_recall = [RiskChecker(semantic=False).check(i["text"]).risk for i in risky]
    pattern_alarms = [RiskChecker(semantic=False).check(i["text"]).risk for i in benign]
    print(f"\n== {LABELS[name]}: {path.name} ({len(risky)} risky, {len(benign)} benign; {per_check_ms:.1f} ms per check)")
    print(f"  pattern layer only: recall {rate(pattern_recall)}, false alarms {rate(pattern_alarms)}")
    print(f"  both layers:        recall {rate(recall)}, false alarms {rate(alarms)}")
    for label, results in (("risky", risky_results), ("benign", benign_results)):
        layers = defaultdict(int)
        for result in results:
            layers[result.layer or "none"] += 1
        print(f"  {label} fired by layer: {dict(layers)}")
    print("  recall per category (flagged; category right):")
    by_category = defaultdict(list)
    for item, result in zip(risky, risky_results):
        by_category[item["category"]].append((result.risk, result.category == item["category"]))
    for category, rows in sorted(by_category.items()):
        print(f"    {category:20s} {rate([r for r, _ in rows])}  category right {sum(c for _, c in rows)}")
    print("  false alarms per kind:")
    by_kind = defaultdict(list)
    for item, result in zip(benign, benign_results):
        by_kind[item.get("kind", "?")].append(result.risk)
    for kind, flags in sorted(by_kind.items()):
        print(f"    {kind:20s} {rate(flags)}")
    print("  misses:")
    for item, result in zip(risky, risky_results):
        if not result.risk:
            print(f"    [{item['category']}] {item['text']}")
    print("  false alarms:")
    for item, result in zip(benign, benign_results):
        if result.risk:
            print(f"    [{item.get('kind', '?')}] {item['text']}  -> {result.layer}: {result.category}, {result.matched}")
    return {"recall": _share(recall), "false_alarms": _share(alarms), "n_risky": len(risky), "n_benign": len(benign),
            "pattern_recall": _share(pattern_recall), "pattern_false_alarms": _share(pattern_alarms),
            "ms": per_check_ms}


def readme_table(figures: dict[str, dict[str, float]]) -> None:
    """The summary as a Markdown table."""
    print("\n| set | risky / benign | patterns only: recall / false alarms | both layers: recall / false alarms | ms per check |")
    print("|---|---|---|---|---|")
    for name, f in figures.items():
        print(f"| {LABELS[name]} | {f['n_risky']} / {f['n_benign']} | {f['pattern_recall']:.3f} / "
              f"{f['pattern_false_alarms']:.3f} | {f['recall']:.3f} / {f['false_alarms']:.3f} | {f['ms']:.0f} |")


def sweep(paths: list[Path], layer: SemanticRiskLayer) -> None:
    """Recall / false alarms of both layers over a threshold x margin grid (development sets only)."""
    risky = [item for path in paths for item in load(path)[0]]
    benign = [item for path in paths for item in load(path)[1]]

    def best_scores(items: list[dict]) -> list[list[tuple[float, float]] | None]:
        # None: the pattern layer fires (and is not deferred), whatever the thresholds.
        rows = []
        for item in items:
            hit = check_patterns(item["text"])
            rows.append(None if hit and not hit.resolved else
                        [(h.score, h.score - h.benign_score) for h in layer.nearest(split_units(item["text"]))])
        return rows

    risky_scores, benign_scores = best_scores(risky), best_scores(benign)

    def flagged(scores: list[tuple[float, float]] | None, threshold: float, margin: float) -> bool:
        return scores is None or any(s >= threshold and m >= margin for s, m in scores)

    print(f"\n== sweep on {', '.join(p.name for p in paths)}: recall / false alarms")
    margins = [0.0, 0.02, 0.04, 0.05, 0.06, 0.07, 0.08, 0.10]
    print("  threshold " + "".join(f"  margin {m:.2f}  " for m in margins))
    for threshold in [0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.48, 0.50]:
        cells = []
        for margin in margins:
            r = sum(flagged(s, threshold, margin) for s in risky_scores) / max(1, len(risky))
            f = sum(flagged(s, threshold, margin) for s in benign_scores) / max(1, len(benign))
            cells.append(f"  {r:.3f} / {f:.3f}")
        print(f"  {threshold:.2f}     " + "".join(cells))


def main() -> None:
    """Evaluate the chosen sets (default: all five), optionally sweep the semantic rule on the development sets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=list(FILES), default=list(FILES), help="which sets (default: all)")
    parser.add_argument("--sweep", action="store_true", help="threshold x margin grid over the development sets")
    args = parser.parse_args()
    layer = SemanticRiskLayer()
    checker = RiskChecker(semantic=layer)
    started = time.perf_counter()
    print(f"semantic layer available: {layer.warm()} (warmed in {time.perf_counter() - started:.1f} s)")
    figures = {}
    for name in args.sets:
        if not FILES[name].is_file():
            print(f"\n== {name}: {FILES[name]} not found")
            continue
        figures[name] = report(name, FILES[name], checker)
    readme_table(figures)
    if args.sweep:
        sweep([FILES[name] for name in DEVELOPMENT], layer)


if __name__ == "__main__":
    main()
