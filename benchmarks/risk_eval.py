"""Benchmark: the risk check's levels on lines and sessions, for patterns alone, the trained judge, and with session context.

Sets (each figure with a 95 % Wilson interval):

- development (looked at, tuned on, never trained on): the evaluation sets of earlier
  sessions (``tests/data/risk_eval_*.toml``, ``tests/data/reflection_everyday.toml``) and
  ``training/risk_judge/data/sessions_dev.jsonl``;
- blind (``--blind DIR``, e.g. ``evaluation/blind-2026-12-03``): written by authors who never
  saw the code or the training data. Measure a blind set once, after the design is final;
  after that it is a development set, and new blind sets are needed.

Figures: risky lines flagged at any level (recall) and, of those describing plan, intent,
means, timing or preparation, the share reaching crisis; hard benign look-alikes flagged at
any level and at crisis; everyday lines flagged; risky sessions answered by the turn a
careful listener would (one turn late allowed); heavy but safe sessions reaching crisis;
alarms per ordinary 30-turn session; milliseconds per check.

    .venv/bin/python benchmarks/risk_eval.py                                   # development
    .venv/bin/python benchmarks/risk_eval.py --sweep                           # thresholds, development only
    .venv/bin/python benchmarks/risk_eval.py --blind evaluation/blind-2026-12-03   # once
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicereflect.safety import RiskChecker  # noqa: E402
from voicereflect.safety.checker import thresholds  # noqa: E402
from voicereflect.safety.context import SessionRisk  # noqa: E402
from voicereflect.safety.judge import RiskJudge  # noqa: E402

URGENT = {"suicide_plan", "harm_to_others", "danger_from_others"}


class CachedJudge(RiskJudge):
    """The real judge, remembering each text's score: the sweep re-scores the same texts many times."""

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict = {}

    def scores(self, texts):  # noqa: D102 - same contract as RiskJudge.scores
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        for score in super().scores(missing):
            self._memo[score.text] = score
        return [self._memo[t] for t in texts] if self.available else []


def wilson(hits: int, total: int) -> str:
    """'0.950 [0.91, 0.97] (190/200)': the share with its 95 % Wilson interval."""
    if not total:
        return "n/a"
    p, z = hits / total, 1.96
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return f"{p:.3f} [{max(0, centre - half):.2f}, {min(1, centre + half):.2f}] ({hits}/{total})"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def development() -> dict[str, list]:
    """The development split, in the blind sets' shape."""
    risky, benign = [], []
    for path in sorted((ROOT / "tests" / "data").glob("risk_eval_*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        risky += [{"text": r["text"], "level": "crisis" if r["category"] in URGENT else "concern",
                   "kind": r["category"]} for r in data.get("risky", [])]
        benign += [{"text": r["text"], "kind": r.get("kind", "")} for r in data.get("benign", [])]
    everyday = tomllib.loads((ROOT / "tests" / "data" / "reflection_everyday.toml").read_text(encoding="utf-8"))
    sessions = read_jsonl(ROOT / "training" / "risk_judge" / "data" / "sessions_dev.jsonl")
    return {"risky": risky, "benign_hard": benign, "everyday": [{"text": t} for t in everyday["benign"]],
            "sessions": [s for s in sessions if s["kind"] != "ordinary"],
            "ordinary_sessions": [s for s in sessions if s["kind"] == "ordinary"]}


def blind(folder: Path) -> dict[str, list]:
    """A blind folder: risky, benign_hard, everyday, sessions and ordinary_sessions (.jsonl)."""
    return {name: read_jsonl(folder / f"{name}.jsonl") if (folder / f"{name}.jsonl").is_file() else []
            for name in ("risky", "benign_hard", "everyday", "sessions", "ordinary_sessions")}


def line_figures(checker: RiskChecker, sets: dict[str, list], *, show: bool) -> dict[str, str]:
    """Figures over the single lines (no session context)."""
    started = time.perf_counter()
    risky = [(item, checker.check(item["text"])) for item in sets["risky"]]
    benign = [(item, checker.check(item["text"])) for item in sets["benign_hard"]]
    everyday = [(item, checker.check(item["text"])) for item in sets["everyday"]]
    count = len(risky) + len(benign) + len(everyday)
    ms = (time.perf_counter() - started) * 1000 / max(1, count)
    plans = [(i, r) for i, r in risky if i.get("level") == "crisis"]
    out = {
        "recall": wilson(sum(r.risk for _, r in risky), len(risky)),
        "plans at crisis": wilson(sum(r.level == "crisis" for _, r in plans), len(plans)),
        "benign any level": wilson(sum(r.risk for _, r in benign), len(benign)),
        "benign crisis": wilson(sum(r.level == "crisis" for _, r in benign), len(benign)),
        "everyday any level": wilson(sum(r.risk for _, r in everyday), len(everyday)),
        "ms per check": f"{ms:.1f}",
    }
    if show:
        levels = {lvl: sum(r.level == lvl for _, r in risky) for lvl in ("check_in", "concern", "crisis")}
        print(f"    risky lines by level: {levels}")
        for item, result in risky:
            if not result.risk:
                print(f"    missed [{item.get('level')}/{item.get('kind', '')}] {item['text']}")
        for item, result in benign + everyday:
            if result.risk:
                print(f"    alarm {result.level} [{item.get('kind', 'everyday')}] {item['text']}  <- {'; '.join(result.reasons)}")
    return out


def session_figures(checker: RiskChecker, sets: dict[str, list], *, context: bool, show: bool) -> dict[str, str]:
    """Figures over the sessions: with the session context, or each turn checked alone."""
    def levels(turns: list[str]) -> list[str]:
        check = SessionRisk(checker).check if context else checker.check
        return [check(turn).level for turn in turns]

    answered, heavy_crisis, heavy_any, risky_count, heavy_count = 0, 0, 0, 0, 0
    for session in sets["sessions"]:
        found = levels(session["turns"])
        if session["kind"] == "risky":
            risky_count += 1
            first = next((i for i, level in enumerate(found) if level != "none"), None)
            ok = first is not None and first <= session["answer_by"] + 1
            answered += ok
            if show and not ok:
                print(f"    late [{session['id']}] answer_by {session['answer_by']}, first {first}: {found}")
        else:
            heavy_count += 1
            heavy_crisis += "crisis" in found
            heavy_any += any(level != "none" for level in found)
            if show and any(level != "none" for level in found):
                print(f"    heavy-safe alarm [{session['id']}]: {found}")
    ordinary = [levels(s["turns"]) for s in sets["ordinary_sessions"]]
    alarms = [sum(level != "none" for level in found) * 30 / max(1, len(found)) for found in ordinary]
    return {
        "risky sessions answered in time": wilson(answered, risky_count),
        "heavy-safe sessions reaching crisis": wilson(heavy_crisis, heavy_count),
        "heavy-safe sessions any level": wilson(heavy_any, heavy_count),
        "alarms per ordinary 30 turns": f"{sum(alarms) / max(1, len(alarms)):.2f} over {len(alarms)} sessions",
    }


def evaluate(name: str, sets: dict[str, list], judge: RiskJudge, *, show: bool) -> None:
    counts = ", ".join(f"{k} {len(v)}" for k, v in sets.items())
    print(f"\n== {name} ({counts})")
    rows = {}
    for label, checker in (("patterns alone", RiskChecker(judge=False)), ("trained judge", RiskChecker(judge=judge))):
        print(f"  {label}:")
        rows[label] = {**line_figures(checker, sets, show=show and label == "trained judge"),
                       **session_figures(checker, sets, context=False, show=False)}
    print("  with session context:")
    rows["with session context"] = session_figures(RiskChecker(judge=judge), sets, context=True, show=show)
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    print(f"\n| {name} | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for key in keys:
        print(f"| {key} | " + " | ".join(row.get(key, "") for row in rows.values()) + " |")


def sweep(sets: dict[str, list], judge: RiskJudge) -> None:
    """Line figures over a grid of thresholds (development split only)."""
    base = thresholds()
    print("\n== sweep on the development split: check_in, concern, crisis -> recall | plans at crisis | "
          "benign any | benign crisis | everyday")
    for check_in, concern, crisis in itertools.product((0.1, 0.15, 0.2, 0.25, 0.3), (0.4, 0.5, 0.6, 0.7), (0.3, 0.4, 0.5)):
        if check_in >= concern:
            continue
        rules = replace(base, check_in=check_in, concern=concern, crisis=crisis)
        figures = line_figures(RiskChecker(judge=judge, rules=rules), sets, show=False)
        print(f"  {check_in:.1f} {concern:.1f} {crisis:.1f}  " + " | ".join(
            figures[k].split(" [")[0] for k in ("recall", "plans at crisis", "benign any level", "benign crisis",
                                                 "everyday any level")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blind", type=Path, help="a blind folder to measure (once, after the design is final)")
    parser.add_argument("--sweep", action="store_true", help="a grid of thresholds over the development split")
    parser.add_argument("--quiet", action="store_true", help="figures only, no misses and alarms")
    args = parser.parse_args()
    judge = CachedJudge()
    started = time.perf_counter()
    print(f"trained judge available: {judge.warm()} (loaded in {time.perf_counter() - started:.1f} s)")
    if args.blind:
        evaluate(f"blind: {args.blind.name}", blind(args.blind), judge, show=not args.quiet)
        return
    sets = development()
    evaluate("development", sets, judge, show=not args.quiet)
    if args.sweep:
        sweep(sets, judge)


if __name__ == "__main__":
    main()
