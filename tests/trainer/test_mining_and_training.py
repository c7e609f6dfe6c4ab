import random

import numpy as np
import pytest
import torch

from helpers import write_jsonl
from embedops.registry import Registry
from embedops.store import Store
from embedops.app.indexes import open_ready_index
from embedops.trainer.mining import mine_hard_negatives
from embedops.trainer.pairs import TrainingPair
from embedops.trainer.train import TrainConfig, train

TOPICS = {
    "pgx": "PGX database failover: promote the standby with pg_ctl and repoint pgbouncer",
    "kafka": "ORDERS topic consumer lag: skip the poison message and restart the group",
    "tls": "edge certificate renewal by cert-manager thirty days before expiry",
    "disk": "kubelet disk pressure evictions: prune images with crictl",
    "redis": "SESSIONS redis out of memory: allkeys-lru and scale the shard",
    "deploy": "shipit rollback returns a service to its previous release",
    "owl": "OWL nightly ETL failed: rerun the failed task, not the whole DAG",
    "flags": "FLAGR kill switch turns a feature off for every tenant",
}


@pytest.fixture
def reg(tmp_path, tiny_model_dir):
    r = Registry(Store.open(str(tmp_path / "s")))
    r.models.register("tiny", tiny_model_dir)
    docs = [{"_id": k, "title": k.upper(), "text": v} for k, v in TOPICS.items()]
    docs.append({"_id": "pgx-copy", "title": "PGX", "text": TOPICS["pgx"] + " (copy)"})  # near-duplicate
    r.corpora.add("ops", write_jsonl(tmp_path / "docs.jsonl", docs))
    return r


def pairs_for(reg):
    texts = {r["id"]: f"{r['title']} {r['text']}" for r in reg.corpora.documents("ops").to_pylist()}
    return [TrainingPair(q, texts[d], d) for d, q in [
        ("pgx", "primary db down promote replica"), ("kafka", "orders consumers behind"), ("tls", "cert expired edge"),
        ("disk", "pods evicted disk full"), ("redis", "sessions cache oom"), ("deploy", "revert the release"),
        ("owl", "owl job broke"), ("flags", "turn feature off now")]]


def _mine(reg, pairs, **settings):
    """Mine through the ready index of the ops corpus under tiny@1 (built on first use)."""
    return mine_hard_negatives(pairs, open_ready_index(reg, "tiny@1", "ops"), reg.corpora.table("ops"), **settings)


def test_mining_skips_positives_and_drops_false_negatives(reg):
    pairs = pairs_for(reg)
    mined, report = _mine(reg, pairs, num_negatives=2, margin=0.95)
    assert report.pairs == 8 and report.index_id
    for p in mined:
        assert len(p.negatives) <= 2 and p.positive not in p.negatives
    # the near-duplicate of the PGX runbook scores above 95% of its positive: filtered, not a negative
    pgx = mined[0]
    assert all("(copy)" not in n for n in pgx.negatives)
    assert report.removed_false_negatives >= 1 and report.removed_known_positives >= 1


def test_mining_scores_positives_from_the_index_as_if_encoded_again(reg, monkeypatch):
    from embedops.encoding import OnnxEncoder
    from embedops.index import IndexReader

    pairs = pairs_for(reg)
    pairs[1] = TrainingPair(pairs[1].query, "orders consumers are behind (a text of the user's own)", "kafka")
    _mine(reg, pairs, num_negatives=2)  # builds the index
    seen, encode = [], OnnxEncoder.encode
    monkeypatch.setattr(OnnxEncoder, "encode", lambda self, texts: seen.extend(texts) or encode(self, texts))
    from_index, report = _mine(reg, pairs, num_negatives=2)
    assert len(seen) == len(pairs) + 1  # the queries, and the one positive that is not its document's text
    monkeypatch.setattr(IndexReader, "stored_vectors", lambda self, ids: {})  # encode every positive
    encoded, again = _mine(reg, pairs, num_negatives=2)
    assert [p.negatives for p in from_index] == [p.negatives for p in encoded]
    assert report.to_dict() == again.to_dict()


@pytest.mark.slow
def test_training_registers_a_child_version_with_lineage(reg, tmp_path):
    mined, _ = _mine(reg, pairs_for(reg), num_negatives=1)
    sts = tmp_path / "sts.tsv"
    sts.write_text("score\tsentence1\tsentence2\n" + "".join(
        f"{s}\t{a}\t{b}\n" for s, a, b in [(5, "a cat sits", "a cat is sitting"), (0, "a cat sits", "stocks fell"),
                                           (4, "men play soccer", "boys play football"), (1, "men play soccer", "rain today"),
                                           (3, "a dog runs", "a dog is running fast"), (0, "a dog runs", "tax law")]))
    result = train(reg, "tiny@1", mined * 4, general_eval=sts, pair_hashes=["abc"],
                   config=TrainConfig(epochs=2, batch_size=8, lr=5e-4, eval_fraction=0.25, interpolate="auto",
                                      max_general_drop=100.0))
    mv = result.model
    assert mv.ref == "tiny@2" and mv.parent == "tiny@1"
    assert mv.params["seed"] == 0 and mv.params["pairs_sha256"] == ["abc"] and mv.params["lr"] == 5e-4
    assert result.curve and all("loss" in c for c in mv.metrics["curve"])
    sweep = result.metrics["alpha_sweep"]
    assert [s["alpha"] for s in sweep] == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4][: len(sweep)] and len(sweep) >= 2
    best = max(sweep, key=lambda s: (s["domain_ndcg@10"], s["alpha"]))  # any alpha passes a 100-point limit
    assert best["within_noise_of_best"] and best["allowed"]
    assert result.alpha == best["alpha"] and result.metrics["after"]["domain_ndcg@10"] == best["domain_ndcg@10"]
    assert mv.params["alpha_rule"] == "best"
    from embedops.cli.train import describe_training

    lines = describe_training(result.metrics)  # the report lists every alpha swept, the kept one starred
    at = next(i for i, line in enumerate(lines) if line.startswith("alpha sweep (dev nDCG@10"))
    rows = lines[at + 1: at + 1 + len(sweep)]
    assert [row[3:].split()[0] for row in rows] == [f"{s['alpha']:g}" for s in sweep]
    starred = [row for row in rows if row.startswith(" * ")]
    assert starred == [r for r in rows if r[3:].split()[0] == f"{result.alpha:g}"] and "within the limit" in starred[0]
    few = result.metrics["dev_queries"]  # a handful of held-out queries: the report says their choices are noise
    assert 0 < few < 20 and any(line.startswith(f"  only {few} dev quer") and "noise" in line for line in lines)
    assert not any("noise" in line for line in describe_training(result.metrics | {"dev_queries": 20}))
    assert reg.models.verify("tiny@2") == []
    # every pair is trained in every epoch: 8 topics whose mined negatives are each other's positives
    # leave batches of 1-3 rows, and the trainer takes as many steps as the sampler makes batches
    # (with sentence-transformers' no-duplicates sampler it stopped after len(data) / batch_size
    # steps, about a third of each epoch here). Whether the tuned model beats the base is the
    # guards' judgement, not this test's: 2 held-out queries of a random-weight model decide nothing.
    assert result.metrics["recipe"]["steps"] > 2 * len(mined * 4) * 0.75 / 8


def test_a_run_scored_another_way_does_not_resume_the_old_checkpoints(monkeypatch):
    """A restarted run resumes its checkpoints only when its dev curve would be scored the same way:
    a resumed run once chose between binary dev scores of 100 and graded ones."""
    from types import SimpleNamespace

    import embedops.trainer.fit as fit
    from embedops.trainer.train import TrainConfig

    base, config = SimpleNamespace(digest="d" * 64), TrainConfig()
    before = fit.run_key(base, ["abc"], config)
    assert fit.run_key(base, ["abc"], config) == before  # same inputs: the same run, resumed
    monkeypatch.setattr(fit, "DEV_SCORING", "another-scoring")
    assert fit.run_key(base, ["abc"], config) != before


def test_rerun_with_the_same_inputs_resumes_from_the_checkpoint(reg):
    pairs = pairs_for(reg) * 2
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-4, eval_fraction=0.0, interpolate=None)
    first = train(reg, "tiny@1", pairs, config=config, pair_hashes=["same"])
    assert first.model.params["resumed"] is False and first.curve
    second = train(reg, "tiny@1", pairs, config=config, pair_hashes=["same"])
    assert second.model.params["resumed"] is True
    assert second.model.params["run_key"] == first.model.params["run_key"]
    weights = lambda mv: next(f.sha256 for f in mv.files if f.path == "model.safetensors")
    assert weights(second.model) == weights(first.model)  # the finished run's weights, not a new training


def test_an_interrupted_run_resumes_from_its_last_step_checkpoint(reg):
    pairs = pairs_for(reg) * 2  # 16 pairs in batches of 4: 4 steps, a checkpoint every 2
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-4, eval_fraction=0.0, interpolate=None, save_steps=2)

    def stop_after_step_3(point):
        if point["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(reg, "tiny@1", pairs, config=config, pair_hashes=["long"], on_log=stop_after_step_3)
    assert [m.ref for m in reg.models.list()] == ["tiny@1"]  # nothing registered half-way
    result = train(reg, "tiny@1", pairs, config=config, pair_hashes=["long"])
    assert result.model.params["resumed"] is True and result.model.params["save_steps"] == 2
    assert [c["step"] for c in result.curve] == [3, 4]  # steps 1-2 came from the checkpoint


def test_training_at_a_shorter_token_limit_keeps_the_models_own_limit(reg):
    pairs = pairs_for(reg) * 2
    base_limit = reg.models.load("tiny@1").max_seq_length
    full = train(reg, "tiny@1", pairs, config=TrainConfig(epochs=1, batch_size=4, lr=1e-3, eval_fraction=0.0, interpolate=None))
    short = train(reg, "tiny@1", pairs, config=TrainConfig(epochs=1, batch_size=4, lr=1e-3, eval_fraction=0.0,
                                                             interpolate=None, max_seq_length=4))
    assert short.model.params["max_seq_length"] == 4
    assert reg.models.load(short.model.ref).max_seq_length == base_limit  # encodes documents as before
    weights = lambda mv: next(f.sha256 for f in mv.files if f.path == "model.safetensors")
    assert weights(short.model) != weights(full.model)  # truncated inputs trained differently
    with pytest.raises(Exception, match="max-seq-length must be a positive"):
        TrainConfig(max_seq_length=0)


def test_bf16_training_on_a_cpu_registers_a_full_precision_version(reg):
    from safetensors import safe_open

    pairs = pairs_for(reg) * 2
    result = train(reg, "tiny@1", pairs, config=TrainConfig(epochs=1, batch_size=4, lr=1e-4, eval_fraction=0.0,
                                                            interpolate=None, mixed_precision="bf16"))
    assert result.model.params["mixed_precision"] == "bf16" and result.curve
    weights = reg.models.verified_path(result.model.ref) / "model.safetensors"
    with safe_open(str(weights), "pt") as f:  # autocast trains in bf16; the stored weights stay fp32
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float32"}
    assert result.model.params["trained_in"] == "bf16"


def test_a_bf16_run_does_not_make_the_next_run_in_the_process_bf16(reg):
    """accelerate keeps a process-wide mixed-precision state; an fp32 run after a bf16 one (a
    notebook, a server, this test suite) must train in fp32, not in emulated bf16."""
    pairs = pairs_for(reg) * 2
    settings = dict(epochs=1, batch_size=4, lr=1e-4, eval_fraction=0.0, interpolate=None)
    first = train(reg, "tiny@1", pairs, config=TrainConfig(**settings, mixed_precision="bf16"))
    second = train(reg, "tiny@1", pairs, config=TrainConfig(**settings, mixed_precision="fp32"))
    assert first.model.params["trained_in"] == "bf16" and second.model.params["trained_in"] == "no"


def test_fp16_on_a_cpu_or_an_unknown_precision_is_refused_before_training(reg):
    from embedops.errors import UsageError

    with pytest.raises(UsageError, match="fp16 training needs a GPU"):
        train(reg, "tiny@1", pairs_for(reg), config=TrainConfig(mixed_precision="fp16"))
    with pytest.raises(UsageError, match="unknown mixed precision 'int4'"):
        TrainConfig(mixed_precision="int4")
    assert [m.ref for m in reg.models.list()] == ["tiny@1"]


def test_two_process_training_shares_batches_and_negatives_across_devices(reg):
    pairs = pairs_for(reg) * 4  # 32 pairs
    logs = []
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-4, eval_fraction=0.0, interpolate=None, devices=2)
    result = train(reg, "tiny@1", pairs, config=config, pair_hashes=["ddp"], on_log=logs.append)
    mv = result.model
    assert mv.ref == "tiny@2" and mv.parent == "tiny@1" and reg.models.verify("tiny@2") == []
    assert mv.params["world_size"] == 2 and mv.params["global_batch_size"] == 8
    assert mv.params["gather_across_devices"] is True
    # 32 pairs in global batches of 8: 4 optimizer steps (one process alone would take 8)
    assert max(c["step"] for c in result.curve) == 4 and all(p.pop("total_steps") == 4 for p in logs)
    assert logs == result.curve  # what on_log got is what the model records, with the run's total besides


def make_dev_beir(root):
    """The ops runbooks as a BEIR directory with a few labelled dev queries (a user's small dev set)."""
    write_jsonl(root / "corpus.jsonl", [{"_id": k, "title": k.upper(), "text": v} for k, v in TOPICS.items()])
    dev = {"q1": ("database primary is down", "pgx"), "q2": ("consumers lagging on orders", "kafka"),
           "q3": ("pods evicted because the disk is full", "disk")}
    write_jsonl(root / "queries.jsonl", [{"_id": q, "text": t} for q, (t, _) in dev.items()])
    (root / "qrels").mkdir(parents=True)
    (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, (_, d) in dev.items()))
    return root


def test_labelled_dev_set_keeps_every_relevant_document_and_caps_the_rest(tmp_path):
    from embedops.errors import InputError
    from embedops.trainer.evaluators import labelled_dev_evaluator

    beir = make_dev_beir(tmp_path / "dev")
    ev = labelled_dev_evaluator(beir, "dev", max_corpus=5)
    assert set(ev.queries_ids) == {"q1", "q2", "q3"}
    assert len(ev.corpus) == 5 and {"pgx", "kafka", "disk"} <= set(ev.corpus_ids)
    with pytest.raises(InputError, match="test.tsv"):
        labelled_dev_evaluator(beir, "test")


def test_a_large_general_retrieval_set_is_scored_on_its_relevant_documents_and_a_capped_sample(tmp_path):
    from embedops.trainer.evaluators import general_retrieval_evaluator

    beir = make_dev_beir(tmp_path / "general")
    (beir / "qrels" / "dev.tsv").rename(beir / "qrels" / "test.tsv")
    capped = general_retrieval_evaluator(beir, max_corpus=4)
    assert set(capped.queries_ids) == {"q1", "q2", "q3"}
    assert len(capped.corpus) == 4 and {"pgx", "kafka", "disk"} <= set(capped.corpus_ids)
    assert len(general_retrieval_evaluator(beir).corpus) == len(TOPICS)  # a small set is scored whole


def test_general_retrieval_is_scored_with_graded_gains_as_the_forgetting_gate_scores_it(tmp_path):
    """A set with relevance levels (TREC DL's 0-3) is scored as trec_eval scores it: putting a
    barely relevant passage above the perfect one costs nDCG@10, where binary gains saw no change."""
    from embedops.metrics import evaluate
    from embedops.trainer.evaluators import general_retrieval_evaluator

    beir = make_dev_beir(tmp_path / "general")
    (beir / "qrels" / "dev.tsv").unlink()
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tpgx\t3\nq1\tkafka\t1\nq1\tdisk\t0\n")
    ev = general_retrieval_evaluator(beir)
    assert ev.queries_ids == ["q1"] and ev.relevant_docs["q1"] == {"pgx", "kafka"}  # level 0 is not relevant
    ranked = [{"corpus_id": "kafka", "score": 0.9}, {"corpus_id": "disk", "score": 0.8}, {"corpus_id": "pgx", "score": 0.7}]
    metrics = ev.compute_metrics([ranked])
    trec = evaluate({"q1": {"pgx": 3, "kafka": 1, "disk": 0}}, {"q1": {h["corpus_id"]: h["score"] for h in ranked}})
    assert metrics["ndcg@k"][10] == pytest.approx(trec["q1"]["ndcg@10"] / 100) == pytest.approx(ev.per_query["q1"])
    assert metrics["ndcg@k"][10] < 0.8  # binary gains: 0.92
    best = [{"corpus_id": "pgx", "score": 0.9}, {"corpus_id": "kafka", "score": 0.8}]
    assert ev.compute_metrics([best])["ndcg@k"][10] == pytest.approx(1.0)


def test_held_out_pairs_with_grades_are_scored_with_graded_gains():
    """A query with many relevant documents fills its top 10 with any of them: binary nDCG@10 sat at
    100 for every model on TREC DL 2019's pairs, so dev chose nothing. The pairs' qrels grades are the
    gains, as in the guards; ungraded pairs (generated, or every grade 1) are scored as before."""
    from embedops.trainer.evaluators import domain_evaluator

    held = [TrainingPair("pgx down", "PGX primary failover", relevance=3),
            TrainingPair("pgx down", "PGX replica lag note", relevance=1)]
    train = [TrainingPair("disk full", "DISK cleanup runbook")]
    ev = domain_evaluator(held, train)
    (qid,), ids = ev.queries_ids, dict(zip(ev.corpus, ev.corpus_ids))
    assert ev.grades == {qid: {ids["PGX primary failover"]: 3, ids["PGX replica lag note"]: 1}}
    worse = [{"corpus_id": ids["PGX replica lag note"], "score": 0.9}, {"corpus_id": ids["DISK cleanup runbook"], "score": 0.8},
             {"corpus_id": ids["PGX primary failover"], "score": 0.7}]
    assert ev.compute_metrics([worse])["ndcg@k"][10] < 0.8  # binary gains: 0.92
    for ungraded in ([TrainingPair(p.query, p.positive) for p in held], [TrainingPair(p.query, p.positive, relevance=1) for p in held]):
        assert domain_evaluator(ungraded, train).grades is None


@pytest.mark.slow
def test_auto_interpolation_scores_alphas_on_the_labelled_dev_set(reg, tmp_path):
    """With a dev set, alpha is chosen on real queries even when no pairs are held out."""
    sts = tmp_path / "sts.tsv"
    sts.write_text("score\tsentence1\tsentence2\n5\ta cat sits\ta cat is sitting\n0\ta cat sits\tstocks fell\n"
                   "4\tmen play soccer\tboys play football\n1\tmen play soccer\train today\n")
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-4, eval_fraction=0.0, interpolate="auto", alphas=(1.0, 0.5),
                         max_general_drop=100.0, domain_dev=str(make_dev_beir(tmp_path / "dev")))
    result = train(reg, "tiny@1", pairs_for(reg) * 2, general_eval=sts, config=config)
    sweep = result.metrics["alpha_sweep"]
    assert [s["alpha"] for s in sweep] == [1.0, 0.5] and all(0 <= s["domain_ndcg@10"] <= 100 for s in sweep)
    assert result.alpha == max(sweep, key=lambda s: (s["domain_ndcg@10"], s["alpha"]))["alpha"]
    assert result.model.params["domain_dev"].endswith("dev") and result.metrics["held_out_pairs"] == 0


def test_base_weights_for_interpolation_are_kept_once_on_the_cpu(reg):
    from embedops.trainer.fit import base_copy as _base_copy
    from embedops.trainer.select import interpolate as _interpolate

    model = reg.models.load("tiny@1", device="cpu")
    base = _base_copy(model, rank=0)
    assert _base_copy(model, rank=1) == {}  # other DDP ranks keep no copy
    assert all(t.device.type == "cpu" for t in base.values())
    tuned = {k: v + 1.0 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    _interpolate(model, base, tuned, 0.25)
    name = next(k for k, v in base.items() if v.is_floating_point())
    assert torch.allclose(model.state_dict()[name], base[name] + 0.25)


def test_auto_loss_uses_gradcache_for_big_steps_with_the_same_batches_and_objective(reg):
    from embedops.trainer.config import FULL_BATCH_TOKEN_LIMIT, resolve_loss

    assert resolve_loss(TrainConfig(), texts_per_example=5, max_seq_length=256) == "cached-mnrl"  # 40,960 tokens
    assert resolve_loss(TrainConfig(batch_size=4), texts_per_example=2, max_seq_length=128) == "mnrl"
    assert resolve_loss(TrainConfig(loss="mnrl"), 5, 256) == "mnrl"  # an explicit choice stands
    assert 4 * 2 * 128 <= FULL_BATCH_TOKEN_LIMIT
    pairs = pairs_for(reg) * 2
    settings = dict(epochs=1, batch_size=4, lr=1e-3, eval_fraction=0.0, interpolate=None)
    plain = train(reg, "tiny@1", pairs, config=TrainConfig(**settings, loss="mnrl"))
    cached = train(reg, "tiny@1", pairs, config=TrainConfig(**settings, loss="cached-mnrl", mini_batch_size=2))
    assert plain.model.params["loss_used"] == "mnrl" and cached.model.params["loss_used"] == "cached-mnrl"
    # the same effective batch (steps per epoch) and objective: losses of the same size at every step
    # (not identical: GradCache embeds in mini-batches, so dropout draws other masks)
    assert [c["step"] for c in plain.curve] == [c["step"] for c in cached.curve] == [1, 2, 3, 4]
    mean = lambda curve: sum(c["loss"] for c in curve) / len(curve)
    assert abs(mean(plain.curve) - mean(cached.curve)) < 0.25 * mean(plain.curve)


def test_short_pairs_are_topped_up_to_the_same_number_of_negatives():
    from embedops.trainer.dataset import even_negatives as _even_negatives

    pairs = [TrainingPair("q1", "p1", "d1", ["n1", "n2", "n3"]), TrainingPair("q2", "p2", "d2", []),
             TrainingPair("q3", "p3", "d3", ["n4"]), TrainingPair("q4", "p4", "d4", ["n5", "n6", "n7"])]
    n, out, padded = _even_negatives(pairs, random.Random(0))
    assert n == 3 and padded == 2 and all(len(p.negatives) == 3 for p in out)
    assert out[0].negatives == ["n1", "n2", "n3"] and out[2].negatives[0] == "n4"  # mined negatives kept, first
    assert all(p.positive not in p.negatives for p in out)  # never its own positive


def _sweep(reg, monkeypatch, dev_by_alpha: dict, alphas=(1.0, 0.9, 0.8, 0.7, 0.4), general=80.0, rule="one-se"):
    """sweep_alpha with each alpha's per-query dev scores given (and one general score for all)."""
    from embedops.trainer import select

    model = reg.models.load("tiny@1")
    state = model.state_dict()
    order = iter(alphas)
    monkeypatch.setattr(select, "per_query_scores", lambda ev, m: np.asarray(dev_by_alpha[next(order)], dtype=float))
    monkeypatch.setattr(select, "score", lambda ev, m: general)
    return select.sweep_alpha(model, state, state, TrainConfig(alphas=alphas, alpha_rule=rule),
                              {"general_spearman": 80.0}, "domain", {"general_spearman": "general"})


def test_auto_alpha_sweep_stops_after_two_alphas_clearly_worse(reg, monkeypatch):
    clear = [60.0, 70.0, 80.0, 90.0]  # every query agrees: no noise to hide a difference in
    dev = {1.0: [s - 5 for s in clear], 0.9: clear, 0.8: [s - 3 for s in clear], 0.7: [s - 4 for s in clear],
           0.4: [s + 20 for s in clear]}  # peaks at 0.9; 0.4 is never tried
    sweep, alpha, reason = _sweep(reg, monkeypatch, dev)
    assert [s["alpha"] for s in sweep] == [1.0, 0.9, 0.8, 0.7] and alpha == 0.9
    assert reason.startswith("best held-out nDCG@10 among alphas 1, 0.9, 0.8, 0.7")
    assert "within 1 point(s)" in reason


def test_auto_alpha_takes_the_alpha_nearest_the_base_that_dev_cannot_tell_from_the_best(reg, monkeypatch):
    tuned = [100.0, 0.0, 100.0, 50.0]
    dev = {1.0: tuned,
           0.9: [0.0, 100.0, 100.0, 49.0],   # 0.25 points lower on the mean, queries disagree: noise
           0.8: [94.0, 4.0, 92.0, 50.0],     # 2.5 lower, within one standard error of the paired difference
           0.7: [90.0, 0.0, 80.0, 30.0],     # 12.5 lower, every query agrees: a real loss
           0.4: [80.0, 0.0, 70.0, 20.0]}
    sweep, alpha, reason = _sweep(reg, monkeypatch, dev)
    assert alpha == 0.8, sweep
    assert [s["within_noise_of_best"] for s in sweep] == [True, True, True, False, False]
    assert reason.startswith("nearest the base within one standard error (2.75) of the best held-out "
                             "nDCG@10 (62.50 at alpha 1)")


def test_auto_alpha_by_default_takes_the_best_dev_score_the_rails_allow(reg, monkeypatch):
    """The default rule keeps the best dev score where dev cannot tell it from alphas nearer the base
    (the one-standard-error rule would take 0.8 here), and does not score the general rails of an
    alpha that cannot beat the best allowed dev score."""
    from embedops.trainer import select

    dev = {1.0: [100.0, 0.0, 100.0, 50.0], 0.9: [0.0, 100.0, 100.0, 49.0], 0.8: [94.0, 4.0, 92.0, 50.0],
           0.7: [90.0, 0.0, 80.0, 30.0], 0.4: [80.0, 0.0, 70.0, 20.0]}
    general_scored = []
    monkeypatch.setattr(select, "_general_point", lambda model, general, before, per_query, limit:
                        (general_scored.append(len(general_scored)) or {"general_spearman": 79.5}, True))
    sweep, alpha, reason = _sweep(reg, monkeypatch, dev, rule="best")
    assert alpha == 1.0 and reason.startswith("best held-out nDCG@10 among alphas 1, 0.9, 0.8, 0.7")
    assert len(general_scored) == 1 and [s["allowed"] for s in sweep] == [True, None, None, None, None]
    assert sweep[0]["general_spearman"] == 79.5 and sweep[1]["general_spearman"] is None
    one_se = _sweep(reg, monkeypatch, dev, rule="one-se")[1]
    assert one_se == 0.8 and len(general_scored) == 1 + 5  # the one-standard-error rule needs every alpha's rails


def test_an_unknown_alpha_rule_is_refused():
    from embedops.errors import UsageError

    with pytest.raises(UsageError, match="unknown alpha rule 'nearest': use best or one-se"):
        TrainConfig(alpha_rule="nearest")


def test_auto_alpha_keeps_a_gain_every_dev_query_shows(reg, monkeypatch):
    dev = {1.0: [80.0, 90.0, 70.0, 60.0], 0.9: [79.0, 89.0, 69.0, 59.0], 0.8: [70.0, 80.0, 60.0, 50.0],
           0.7: [60.0, 70.0, 50.0, 40.0], 0.4: [0.0] * 4}
    sweep, alpha, _ = _sweep(reg, monkeypatch, dev)
    assert alpha == 1.0 and [s["alpha"] for s in sweep] == [1.0, 0.9, 0.8]


def test_a_retrieval_rail_holds_alpha_back_by_the_upper_end_of_its_drop_not_its_mean(reg, monkeypatch):
    """A rail whose mean drop is under the 1-point limit but whose queries scatter (so the loss could
    be bigger) does not let alpha through; a steady small drop does."""
    from embedops.trainer import select

    model = reg.models.load("tiny@1")
    state = model.state_dict()
    dev = {1.0: [90.0, 80.0, 70.0, 60.0], 0.8: [89.0, 79.0, 69.0, 59.0], 0.6: [85.0, 75.0, 65.0, 55.0]}
    base_rail = np.array([50.0, 50.0, 50.0, 50.0, 50.0, 50.0])
    rail = {1.0: [47.0, 53.0, 46.0, 54.0, 50.0, 44.6],   # mean drop 0.9, scattered: could be 3 points
            0.8: [49.5, 49.5, 49.5, 49.4, 49.5, 49.5],   # mean drop 0.52, every query the same: allowed
            0.6: [49.8] * 6}
    calls = iter([("dev", 1.0), ("rail", 1.0), ("dev", 0.8), ("rail", 0.8), ("dev", 0.6), ("rail", 0.6)])

    def scores(ev, m):
        which, alpha = next(calls)
        return np.asarray((dev if which == "dev" else rail)[alpha], dtype=float)

    monkeypatch.setattr(select, "per_query_scores", scores)
    sweep, alpha, reason = select.sweep_alpha(
        model, state, state, TrainConfig(alphas=(1.0, 0.8, 0.6)), {"general_retrieval_ndcg@10": 50.0}, "domain",
        {"general_retrieval_ndcg@10": "rail"}, {"general_retrieval_ndcg@10": base_rail})
    first = sweep[0]
    assert 50.0 - first["general_retrieval_ndcg@10"] < 1.0 < first["general_retrieval_ndcg@10_drop_upper95"]
    assert not first["allowed"] and sweep[1]["allowed"] and alpha == 0.8
    assert "95% upper bound of the drop" in reason


def test_auto_precision_on_a_cpu_follows_its_features():
    from embedops.cpu import parse_cpuinfo
    from embedops.trainer.fit import mixed_precision as _mixed_precision
    from embedops.trainer.trial import Precision
    from test_cpu import AVX2_ONLY, ZEN4

    assert _mixed_precision("auto", cuda=False, cpu=parse_cpuinfo(ZEN4)) == Precision(True, False)
    assert _mixed_precision("auto", cuda=False, cpu=parse_cpuinfo(AVX2_ONLY)) == Precision(False, False)
    assert _mixed_precision("fp32", cuda=False, cpu=parse_cpuinfo(ZEN4)) == Precision(False, False)  # an explicit choice stands


def test_settings_left_to_the_data_follow_the_documented_rule():
    from embedops.trainer.config import LR_GRID, MAX_EPOCHS, resolve_recipe

    labelled, rule, plan = resolve_recipe(TrainConfig(), ["labels", "labels", "file"])
    assert (plan.lrs, plan.epochs, plan.chosen_on_dev) == (LR_GRID, MAX_EPOCHS, True)
    assert rule == "labelled pairs; lr and steps chosen on dev" and labelled.epochs is None
    assert labelled.alphas == (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
    one_lr, _, plan = resolve_recipe(TrainConfig(lr=3e-5), ["labels"])  # a given rate is the only one tried
    assert (plan.lrs, plan.epochs, plan.chosen_on_dev) == ((3e-5,), MAX_EPOCHS, True)
    # nothing to choose on: the fixed recipes
    fixed, rule, plan = resolve_recipe(TrainConfig(), ["labels"], has_dev=False)
    assert (fixed.epochs, fixed.lr, plan.chosen_on_dev, rule) == (2, 5e-5, False, "labelled pairs; fixed recipe (no dev score)")
    generated, rule, _ = resolve_recipe(TrainConfig(), ["local", "extractive"], has_dev=False)
    assert (generated.epochs, generated.lr) == (1, 2e-5)
    # a held-out slice of generated pairs always prefers alpha 1.0; labelled dev queries mostly chose 0.6
    assert generated.alphas == (0.6, 0.5, 0.4)
    assert rule == "every pair generated; fixed recipe (no dev score); alphas <= 0.6 without a labelled dev set"
    _, rule, plan = resolve_recipe(TrainConfig(), ["labels"], distributed=True)
    assert not plan.chosen_on_dev and "several processes" in rule
    with_dev, rule, _ = resolve_recipe(TrainConfig(domain_dev="dev-set"), ["local"])  # a labelled dev set chooses freely
    assert with_dev.alphas[0] == 1.0 and rule == "every pair generated; lr and steps chosen on dev"
    own, _, _ = resolve_recipe(TrainConfig(alphas=(0.9, 0.8)), ["local"])  # alphas the user chose stand
    assert own.alphas == (0.9, 0.8)
    given, rule, plan = resolve_recipe(TrainConfig(epochs=2, lr=1e-4, interpolate=0.8), ["local"])
    assert (given.epochs, given.lr, given.interpolate, rule, plan.chosen_on_dev) == (2, 1e-4, 0.8, "as given", False)


def test_the_bundled_general_set_ships_in_the_package_and_spans_the_scale():
    from embedops.beir import read_sts
    from embedops.trainer.evaluators import bundled_general_eval

    s1, s2, scores = read_sts(bundled_general_eval())
    assert len(s1) == 132 and min(scores) == 0.0 and max(scores) == 5.0
    assert len(set(zip(s1, s2))) == 132 and all(a != b for a, b in zip(s1, s2))
