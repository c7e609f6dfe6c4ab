"""Quality benchmark (a benchmark, not a test): SciFact train for training, SciFact test for
evaluation, with STS-B test Spearman and the MS MARCO slice nDCG@10 as the general checks.

    # `embedops train` with no tuning flags, through the CLI (pairs import -> pairs mine -> train),
    # one training per seed; mean and 95% interval; raw JSON per seed in bench/quality-results/:
    HF_HUB_OFFLINE=1 .venv/bin/python bench/quality.py --runs defaults --seeds 0,1,2 [--store DIR]
    # a recipe under comparison, scored on the held-out train queries only (no test score read):
    ... bench/quality.py --runs defaults --seeds 0 --train-flags "--epochs 3" --dev-only --tag dev-3-epochs
    # the same from generated pairs only (pairs generate -> pairs mine -> train), each seed guarded:
    ... bench/quality.py --runs defaults-generated --generator extractive --generate-docs 800 \
        --tag defaults-extractive
    # a generated-pairs recipe under comparison, scored on SciFact's labelled train queries and STS-B dev:
    ... bench/quality.py --runs defaults-generated --generate-docs 800 --seeds 0 \
        --train-flags "--epochs 2 --lr 5e-5" --dev-only --tag dev-extractive-2ep-5e-5
    # more seeds later (--seeds 3,4), then one summary over all five raw files, training nothing:
    ... bench/quality.py --runs defaults-generated --tag defaults-extractive --seeds 0,1,2,3,4 --summarize
    # ... or from queries an LLM wrote on a GPU (`embedops pairs generate -g local ... --out llm.jsonl`):
    ... bench/quality.py --runs defaults-generated --pairs-file llm.jsonl --tag defaults-llm
    # research runs through the library, one training per --seeds seed (default 0,1,2), mean and interval:
    HF_HUB_OFFLINE=1 .venv/bin/python bench/quality.py [--runs labelled,extractive,generated] [--epochs 3]
    # LLM-written queries (see docs/BENCHMARKS.md, (b)), alpha fixed or chosen on a labelled dev split:
    ... bench/quality.py --runs generated --pairs-file greedy.jsonl,sampled.jsonl --lr 2e-5 --interpolate 0.6
    ... bench/quality.py --runs generated --pairs-file ... --domain-dev-split train
    # on a CPU with AVX512-BF16 (e.g. AMD EPYC Zen 4), bf16 autocast makes a training step ~1.5x faster:
    ... bench/quality.py ... --mixed-precision bf16
    # other interpolation weights of the same training run, without retraining (e.g. label-free 0.5):
    ... bench/quality.py ... --interpolate 0.6 --also-alphas 0.5,1.0

Runs the real pipeline through the library: pairs -> positive-aware mining -> MNRL training with
WiSE-FT interpolation (alpha: the best domain score whose STS-B dev score stays within 1 point; the
domain score is a held-out slice of the pairs, or with --domain-dev-split SciFact queries of that
split, never the test split) -> registered version -> ONNX index -> search.
Prints a table and appends a line to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMBEDOPS_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "bench"))


def _retrieval(reg, ref: str, corpus: str, path: Path, qrels_file: Path) -> dict:
    """nDCG@10 and recall@10 of ``ref``'s fp32 index of ``corpus`` (built if missing) on ``qrels_file``."""
    from embedops.beir import read_qrels, read_queries
    from embedops.metrics import evaluate, mean_metrics
    from embedops.reembed import IndexBuild
    from embedops.registry import Searcher, find_ready_index

    searcher = Searcher(reg)
    qrels = read_qrels(qrels_file)
    queries = read_queries(path, only=set(qrels))
    index = find_ready_index(reg, ref, corpus, "fp32") or IndexBuild(reg, ref, corpus).run().index
    run = {}
    for qid, text in queries.items():
        hits = searcher.search(text, 100, index_id=index.index_id).hits
        run[qid] = {h.id: h.score for h in hits}
    m = mean_metrics(evaluate(qrels, run, k=10))
    return {f"{corpus}_ndcg@10": m["ndcg@10"], f"{corpus}_recall@10": m["recall@10"]}


def _sts(reg, ref: str, file: str) -> float:
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from embedops.beir import read_sts

    s1, s2, scores = read_sts(DATA / "general-stsb" / file)
    ev = EmbeddingSimilarityEvaluator(s1, s2, [s / 5 for s in scores], name=Path(file).stem)
    return 100 * ev(reg.models.load(ref))[ev.primary_metric]


def evaluate_model(reg, ref: str) -> dict:
    """The test figures: SciFact test and the MS MARCO slice (nDCG@10, recall@10), STS-B test Spearman."""
    ms = DATA / "general-msmarco-dl19"
    return (_retrieval(reg, ref, "scifact", DATA / "scifact", DATA / "scifact" / "qrels" / "test.tsv")
            | _retrieval(reg, ref, "msmarco", ms, next((ms / "qrels").glob("*.tsv")))
            | {"stsb_test_spearman": _sts(reg, ref, "sts-test.tsv")})


def evaluate_dev(reg, ref: str) -> dict:
    """Dev figures for a model trained on *generated* pairs only: SciFact's labelled train queries (all
    809; such a run never sees them) and STS-B dev. No test split is read. (For a model trained on the
    labelled train pairs these queries are its training data: use the trainer's held-out slice.)"""
    return (_retrieval(reg, ref, "scifact", DATA / "scifact", DATA / "scifact" / "qrels" / "train.tsv")
            | {"stsb_dev_spearman": _sts(reg, ref, "sts-dev.tsv")})


def reinterpolate(reg, base_ref: str, ref: str, alpha: float, new_alpha: float, name: str) -> str:
    """Register the WiSE-FT mix at ``new_alpha`` of a version trained and interpolated at ``alpha``.

    theta_a = a * tuned + (1 - a) * base, so tuned = (theta_a - (1 - a) * base) / a: other alphas of
    the same training run cost an evaluation, not a training (for reporting, e.g. a label-free 0.5).
    """
    from embedops.trainer.select import interpolate as _interpolate  # the trainer's own WiSE-FT mix

    b, model = reg.models.load(base_ref).state_dict(), reg.models.load(ref)
    tuned = {k: (v - (1 - alpha) * b[k]) / alpha if v.is_floating_point() else v for k, v in model.state_dict().items()}
    _interpolate(model, b, tuned, new_alpha)
    out = Path(tempfile.mkdtemp(prefix="embedops-alpha-"))
    model.save(str(out))
    return reg.models.register(name, str(out)).ref


def interval95(values: list[float]) -> dict:
    """Mean and a two-sided 95% Student-t interval of the mean over seeds (scipy.stats)."""
    import statistics

    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "n": len(values), "low": None, "high": None}
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return {"mean": mean, "n": len(values), "low": mean - half, "high": mean + half, "stdev": statistics.stdev(values)}


def _alphas(runs) -> str:
    """The alpha of each seed's run, e.g. '0.8/1/1' ('-' where none was used)."""
    return "/".join("-" if r["alpha"] is None else f"{r['alpha']:g}" for r in runs)


def _cli(store_uri: str, *args, time_file: Path | None = None, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """One embedops command as a user types it (a new process, the installed entry point's module);
    an exit status outside ``ok`` stops the benchmark."""
    cmd = [sys.executable, "-m", "embedops", "--store", store_uri, "--create", *map(str, args)]
    if time_file:
        cmd = ["/usr/bin/time", "-f", "%M %e", "-o", str(time_file), *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"COLUMNS": "80"})
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def plain_st(reg, mined: Path, seed: int, name: str) -> str:
    """The plain sentence-transformers recipe a careful engineer writes in 20 lines, on the same mined
    pairs: MultipleNegativesRankingLoss over (anchor, positive, hard negatives), the no-duplicates
    sampler, 1 epoch, lr 5e-5, batch 32, 10% warm-up, the seed; no held-out slice, no interpolation.
    Registered so it is evaluated exactly like embedops' version. Returns its ref."""
    import random

    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    from embedops.trainer.pairs import read_pairs

    pairs = read_pairs(mined)
    n_neg = max(len(p.negatives) for p in pairs)
    rows = [p for p in pairs if len(p.negatives) == n_neg]  # the pairs that kept their hard negatives (as the script)
    cols = {"anchor": [p.query for p in rows], "positive": [p.positive for p in rows]}
    for j in range(n_neg):
        cols[f"negative_{j + 1}"] = [p.negatives[j] for p in rows]
    torch.manual_seed(seed)
    random.seed(seed)
    model = reg.models.load("minilm@1", device="cpu")
    model.max_seq_length = 128  # as embedops trains; evaluation uses the model's own 256
    out = Path(tempfile.mkdtemp(prefix="embedops-plain-st-"))
    args = SentenceTransformerTrainingArguments(output_dir=str(out / "run"), num_train_epochs=1, learning_rate=5e-5,
                                                per_device_train_batch_size=32, warmup_steps=0.1, seed=seed,
                                                batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no",
                                                report_to=[], use_cpu=True, disable_tqdm=True)
    SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(cols),
                               loss=MultipleNegativesRankingLoss(model)).train()
    model.max_seq_length = 256
    model.save(str(out / "model"))
    return reg.models.register(name, str(out / "model"), params={"recipe": "plain sentence-transformers", "seed": seed,
                                                                 "negatives": n_neg, "pairs": len(rows)}).ref


def product_path(store_uri: str, base_ref: str, seeds: list[int], tag: str, out_dir: Path,
                 generate: list[str] | None = None, train_flags: list[str] | None = None,
                 dev_only: bool = False, pairs_file: str | None = None, plain: bool = False) -> dict:
    """``embedops pairs import`` (or with ``generate``, ``pairs generate`` with those arguments; or
    ``pairs_file``, pairs a generator wrote before, e.g. on a GPU) ->
    ``pairs mine`` -> ``train`` with no tuning flags (only ``--seed`` and ``--name``), as a new user
    runs them, then the test evaluation of each seed's version and ``embedops guard`` of its SciFact
    index against ``production`` (the base's index). ``train_flags`` are added to ``train`` (a recipe
    under comparison); ``dev_only`` skips the test evaluation and the guard, for choosing a recipe on
    the held-out train queries without reading a test score (and for generated pairs, scores SciFact's
    labelled train queries and STS-B dev, :func:`evaluate_dev`). Each seed's raw result is written to
    ``out_dir`` as soon as it is known."""
    from embedops.registry import Registry
    from embedops.store import Store

    work = Path(tempfile.mkdtemp(prefix="embedops-defaults-"))
    t = time.perf_counter()
    if pairs_file:
        import shutil

        shutil.copyfile(pairs_file, work / "pairs.jsonl")
        prep = {"pairs_file": pairs_file}
    elif generate:
        made = _cli(store_uri, "pairs", "generate", "-c", "scifact", *generate, "--out", work / "pairs.jsonl")
        prep = {"generate": generate, "generated": made.stdout.strip()}
    else:
        made = _cli(store_uri, "pairs", "import", DATA / "scifact", "--split", "train", "--out", work / "pairs.jsonl")
        prep = {"import": made.stdout.strip()}
    mined = _cli(store_uri, "pairs", "mine", work / "pairs.jsonl", "--model", base_ref, "--corpus", "scifact",
                 "--out", work / "mined.jsonl")
    prep |= {"seconds": time.perf_counter() - t, "mine": mined.stdout.strip()}
    print("pairs", json.dumps(prep), flush=True)
    reg = Registry(Store.open(store_uri))
    if reg.aliases.get("production") is None:  # the guard's domain gate compares with what serves: the base model's index
        from embedops.registry import find_ready_index

        _cli(store_uri, "promote", find_ready_index(reg, base_ref, "scifact", "fp32").index_id, "--force",
             "--reason", "quality bench: the base model serves, candidates are judged against it")
    runs = {}
    for seed in seeds:
        timing = work / f"time-{seed}.txt"
        done = _cli(store_uri, "train", "--base", base_ref, "--pairs", work / "mined.jsonl", "--seed", seed,
                    "--name", f"minilm-{tag}-s{seed}", *(train_flags or []), time_file=timing)
        peak_kib, wall = timing.read_text().split()[-2:]
        ref = done.stdout.strip().splitlines()[-1]
        reg = Registry(Store.open(store_uri))
        version = reg.models.get(ref)
        run = {"seed": seed, "ref": ref, "train_wall_s": float(wall), "train_peak_rss_mib": int(peak_kib) / 1024,
               "train_report": done.stderr.strip().splitlines(), "alpha": version.metrics.get("alpha"),
               "train_metrics": {k: version.metrics.get(k) for k in ("before", "after", "alpha_sweep", "alpha_reason", "recipe",
                                                                     "recipe_search")},
               "chosen": version.params.get("chosen"),
               "train_flags": train_flags or []}
        if not dev_only:
            run["test"] = evaluate_model(reg, ref)
            run["guard"] = _guard(store_uri, reg, ref)
            if plain:  # the plain sentence-transformers recipe on the same mined pairs, same seed, same run
                t0 = time.perf_counter()
                plain_ref = plain_st(reg, work / "mined.jsonl", seed, f"plain-st-{tag}-s{seed}")
                run["plain_st"] = {"ref": plain_ref, "train_wall_s": time.perf_counter() - t0,
                                   "test": evaluate_model(reg, plain_ref), "guard": _guard(store_uri, reg, plain_ref)}
        elif generate or pairs_file:  # the labelled train queries are dev data for a generated-pairs run
            run["dev"] = evaluate_dev(reg, ref)
        runs[str(seed)] = run
        print(f"seed {seed}", json.dumps(run), flush=True)
        from conftest import machine

        (out_dir / f"{time.strftime('%Y-%m-%d')}-{tag}-seed{seed}.json").write_text(
            json.dumps({"bench": "quality_product_path", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
                        "pairs": prep, **run}, indent=1) + "\n")
    return {"pairs": prep, "runs": runs}


# what the recipe chooses on each seed's own dev split, and how long that took: not part of "the same recipe"
_CHOSEN_PER_SEED = {"lr", "steps", "steps_trained", "seconds"}


def _seed_files(out_dir: Path, tag: str, seeds: list[int]) -> dict:
    """The raw results ``product_path`` wrote for ``tag``'s ``seeds`` (the newest file of each seed), for
    a summary over seeds trained in separate invocations; they must share the pairs and the flags."""
    runs, recipes = {}, set()
    for seed in seeds:
        files = sorted(out_dir.glob(f"????-??-??-{tag}-seed{seed}.json"))  # date-tag-seed, newest last
        if not files:
            raise SystemExit(f"--summarize: no raw result of seed {seed} for tag {tag!r} in {out_dir}")
        run = json.loads(files[-1].read_text())
        recipe = {k: v for k, v in run["train_metrics"]["recipe"].items() if k not in _CHOSEN_PER_SEED}
        recipes.add(json.dumps([run["pairs"].get("generate") or run["pairs"].get("pairs_file") or "import",
                                run.get("train_flags", []), recipe], sort_keys=True))
        runs[str(seed)] = run
    if len(recipes) > 1:
        raise SystemExit(f"--summarize: the seeds of {tag!r} were not run with the same pairs and recipe: {sorted(recipes)}")
    return {"runs": runs}


def _guard(store_uri: str, reg, ref: str) -> dict:
    """``embedops guard`` of ``ref``'s SciFact index against ``production`` on the SciFact test qrels,
    with STS-B test as the general benchmark: would the promotion be allowed?"""
    from embedops.registry import find_ready_index

    index_id = find_ready_index(reg, ref, "scifact", "fp32").index_id
    done = _cli(store_uri, "guard", index_id, "--gold", DATA / "scifact", "--general",
                DATA / "general-stsb" / "sts-test.tsv", "--json", ok=(0, 1))  # 1: a gate failed
    report = json.loads(done.stdout)
    return {"exit": done.returncode, "passed": done.returncode == 0, "verdict": report.get("verdict"), "index": index_id,
            "gates": {g["name"]: {k: g.get(k) for k in ("status", "value", "threshold", "reason")} for g in report.get("gates", [])}}


def main() -> None:
    from embedops.registry import Registry
    from embedops.store import Store
    from embedops.trainer.generate import ExtractiveGenerator, filter_pairs
    from embedops.app.indexes import open_ready_index
    from embedops.trainer.mining import mine_hard_negatives, round_trip_ranker
    from embedops.trainer.pairs import import_beir
    from embedops.trainer.train import TrainConfig, train
    from embedops.corpus import read_documents

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None, help="store to use (default: a temporary one)")
    ap.add_argument("--runs", default="labelled,extractive")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--extractive-docs", type=int, default=2000, help="documents to generate queries for")
    ap.add_argument("--extractive-per-doc", type=int, default=1)
    ap.add_argument("--title-query", action="store_true", help="extractive: each title is one of its document's queries")
    ap.add_argument("--extractive-epochs", type=int, default=1)
    ap.add_argument("--alphas", default="1.0,0.9,0.8,0.7,0.6,0.5,0.4", help="interpolation weights to try")
    ap.add_argument("--interpolate", default="auto", help="'auto' (sweep --alphas) or a fixed alpha")
    ap.add_argument("--domain-dev-split", default=None, help="choose alpha on SciFact's queries of this split (e.g. train)")
    ap.add_argument("--pairs-file", default="", help="run 'generated': comma-separated pairs JSONL files "
                    "({query, doc_id}) written by a generator, e.g. `embedops pairs generate -g local`; "
                    "run 'defaults-generated': one such file, used in place of generating")
    ap.add_argument("--also-alphas", default="", help="also evaluate these interpolation weights "
                    "of the same training run (e.g. 0.5,1.0), derived from its weights")
    ap.add_argument("--mixed-precision", default="auto", help="training precision: auto, bf16 (fast on an AVX512-BF16 CPU), fp32")
    ap.add_argument("--train-max-seq-length", type=int, default=None, help="token limit while training (e.g. 128: much cheaper steps on abstracts)")
    ap.add_argument("--eval-fraction", type=float, default=0.1, help="share of the pairs' queries held out for the trainer's evaluator")
    ap.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps: a rerun of the same command resumes")
    ap.add_argument("--seeds", default="0,1,2", help="seeds: one training per seed for every run (at least 3 for an interval)")
    ap.add_argument("--tag", default=None, help="runs 'defaults*': name of their raw result files "
                    "(default: defaults-labelled, defaults-generated)")
    ap.add_argument("--train-flags", default="", help="runs 'defaults*': flags added to `train`, e.g. '--epochs 3'")
    ap.add_argument("--plain-st", action="store_true", help="runs 'defaults*': also train and test the plain "
                    "sentence-transformers recipe (MNRL, 1 epoch, 5e-5) on the same mined pairs, per seed")
    ap.add_argument("--dev-only", action="store_true", help="runs 'defaults*': no test evaluation or guard (choose on dev)")
    ap.add_argument("--summarize", action="store_true", help="runs 'defaults*': train nothing; summarise the raw "
                    "files of --tag for --seeds (seeds trained in separate invocations, same pairs and recipe)")
    ap.add_argument("--generator", default="extractive", help="run 'defaults-generated': `pairs generate -g` (offline: extractive, local)")
    ap.add_argument("--generate-docs", type=int, default=None, help="run 'defaults-generated': only the first N abstracts")
    args = ap.parse_args()
    if (args.dev_only or args.summarize) and any(r not in ("defaults", "defaults-generated") for r in args.runs.split(",")):
        raise SystemExit("--dev-only and --summarize apply to the runs 'defaults' and 'defaults-generated' only")
    if args.domain_dev_split == "test":
        raise SystemExit("--domain-dev-split test would choose alpha on the evaluation queries; use train")

    store_uri = args.store or tempfile.mkdtemp(prefix="embedops-quality-") + "/store"
    reg = Registry(Store.open(store_uri))
    for name, path in (("scifact", DATA / "scifact"), ("msmarco", DATA / "general-msmarco-dl19")):
        reg.corpora.add(name, path)
    from embedops.errors import EmbedopsError

    try:  # a reused --store keeps its base version and the base's indexes
        base = reg.models.get("minilm@1")
    except EmbedopsError:
        base = reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    results = {"base": (evaluate_dev if args.dev_only else evaluate_model)(reg, base.ref)}
    print("base", json.dumps(results["base"]), flush=True)
    sts_dev = DATA / "general-stsb" / "sts-dev.tsv"
    timings = {}
    seeds = [int(x) for x in args.seeds.split(",")]
    per_seed: dict[str, list[dict]] = {}  # run -> one evaluation per seed (runs other than 'defaults')
    intervals: dict[str, dict] = {}

    for run in args.runs.split(","):
        t = time.perf_counter()
        if run in ("defaults", "defaults-generated"):  # the product path with no tuning flags, one training per seed
            generate, tag = None, args.tag or ("defaults-labelled" if run == "defaults" else "defaults-generated")
            if run == "defaults-generated" and not args.pairs_file:
                generate = ["-g", args.generator, "--round-trip", base.ref] + (
                    ["--limit", str(args.generate_docs)] if args.generate_docs else [])
            if args.summarize:
                done = _seed_files(ROOT / "bench" / "quality-results", tag, seeds)
            else:
                done = product_path(store_uri, base.ref, seeds, tag, ROOT / "bench" / "quality-results", generate,
                                    args.train_flags.split(), args.dev_only,
                                    args.pairs_file if run == "defaults-generated" else None, args.plain_st)
            timings[run] = time.perf_counter() - t
            if args.dev_only:
                devs = [r["dev"] for r in done["runs"].values() if "dev" in r]
                if devs:  # generated pairs: the labelled train queries scored every seed
                    results[run] = {k: interval95([d[k] for d in devs])["mean"] for k in devs[0]} | {
                        "alpha": _alphas(done["runs"].values())}
                continue
            b = results["base"]
            summary = {k: interval95([r["test"][k] for r in done["runs"].values()]) for k in b}
            results[run] = {k: v["mean"] for k, v in summary.items()} | {"alpha": _alphas(done["runs"].values())}
            print(run, json.dumps(summary), flush=True)
            (ROOT / "bench" / "quality-results" / f"{time.strftime('%Y-%m-%d')}-{tag}-summary.json").write_text(
                json.dumps({"bench": "quality_product_path", "date": time.strftime("%Y-%m-%d"), "base": b,
                            "seeds": seeds, "mean_and_95ci": summary,
                            "delta_vs_base": {k: summary[k]["mean"] - b[k] for k in b},
                            "per_seed": {s: {"scifact_ndcg@10": r["test"]["scifact_ndcg@10"], "alpha": r["alpha"],
                                             "guard_passed": r.get("guard", {}).get("passed")}
                                         for s, r in done["runs"].items()}}, indent=1) + "\n")
            continue
        if run == "labelled":
            pairs = import_beir(DATA / "scifact", "train")
            epochs = args.epochs
        elif run == "extractive":
            docs = read_documents(DATA / "scifact")[: args.extractive_docs]
            generated = ExtractiveGenerator(per_doc=args.extractive_per_doc, seed=0,
                                            title_query=args.title_query).generate(docs)
            pairs, report = filter_pairs(generated, rank_of=round_trip_ranker(open_ready_index(reg, base.ref, "scifact"), 10))
            print("extractive filter", report.to_dict(), flush=True)
            epochs = args.extractive_epochs
        elif run == "generated":
            from embedops.trainer.pairs import read_pairs

            texts = reg.corpora.texts("scifact")
            generated = [p for f in args.pairs_file.split(",") if f for p in read_pairs(f, corpus=texts)]
            pairs, report = filter_pairs(generated, rank_of=round_trip_ranker(open_ready_index(reg, base.ref, "scifact"), 10))
            print("generated filter", report.to_dict(), flush=True)
            epochs = args.extractive_epochs
        else:
            raise SystemExit(f"unknown run {run}")
        mined, mreport = mine_hard_negatives(pairs, open_ready_index(reg, base.ref, "scifact"), reg.corpora.table("scifact"),
                                             num_negatives=args.negatives)
        print(run, "mining", mreport.to_dict(), flush=True)
        runs_of_seed = []
        for seed in seeds:  # one training per seed; the table shows the mean, the record every seed
            config = TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                                 interpolate=args.interpolate if args.interpolate == "auto" else float(args.interpolate),
                                 max_general_drop=1.0, eval_fraction=args.eval_fraction,
                                 alphas=tuple(float(a) for a in args.alphas.split(",")),
                                 domain_dev=str(DATA / "scifact") if args.domain_dev_split else None,
                                 domain_dev_split=args.domain_dev_split or "dev", mixed_precision=args.mixed_precision,
                                 max_seq_length=args.train_max_seq_length, save_steps=args.save_steps)
            result = train(reg, base.ref, mined, name=f"minilm-{run}", general_eval=sts_dev, config=config,
                           on_log=lambda p: print("  ", p, flush=True))
            one = evaluate_model(reg, result.model.ref) | {"alpha": result.alpha, "pairs": len(pairs),
                                                           "ref": result.model.ref, "seed": seed}
            runs_of_seed.append(one)
            print(run, json.dumps(one), flush=True)
            for extra in (float(a) for a in args.also_alphas.split(",") if a):
                if result.alpha is None or extra == result.alpha:
                    continue
                ref = reinterpolate(reg, base.ref, result.model.ref, result.alpha, extra, f"minilm-{run}-alpha{extra:g}")
                key = f"{run}@{extra:g}"
                per_seed.setdefault(key, []).append(evaluate_model(reg, ref) | {"alpha": extra, "ref": ref, "seed": seed})
                print(key, json.dumps(per_seed[key][-1]), flush=True)
        per_seed[run] = runs_of_seed
        timings[run] = time.perf_counter() - t
    for run, rs in per_seed.items():
        summary = {k: interval95([r[k] for r in rs]) for k in results["base"]}
        intervals[run] = summary
        results[run] = {k: v["mean"] for k, v in summary.items()} | {"alpha": _alphas(rs)}
        print(run, "mean and 95% interval over seeds", json.dumps(summary), flush=True)

    b = results["base"]
    if args.dev_only:  # dev figures only: SciFact train queries, STS-B dev (never a test split)
        print(f"\n{'run':<20} {'SciFact train nDCG@10':>22} {'recall@10':>10} {'STS-B dev':>10} {'alpha':>7}")
        for run, r in results.items():
            print(f"{run:<20} {r['scifact_ndcg@10']:>22.2f} {r['scifact_recall@10']:>10.2f} "
                  f"{r['stsb_dev_spearman']:>10.2f} {str(r.get('alpha', '-')):>7}")
        return
    print(f"\n{'run':<20} {'SciFact nDCG@10':>16} {'recall@10':>10} {'STS-B test':>11} {'MS MARCO nDCG@10':>17} {'alpha':>6}")
    for run, r in results.items():
        print(f"{run:<20} {r['scifact_ndcg@10']:>16.2f} {r['scifact_recall@10']:>10.2f} {r['stsb_test_spearman']:>11.2f} "
              f"{r['msmarco_ndcg@10']:>17.2f} {str(r.get('alpha', '-')):>6}")
    from conftest import record

    record("quality_scifact", {"results": results, "per_seed": per_seed, "mean_and_95ci": intervals,
                               "seconds": timings, "args": vars(args),
                               "delta_vs_base": {run: {k: r[k] - b[k] for k in b} for run, r in results.items() if run != "base"}})


if __name__ == "__main__":
    main()
