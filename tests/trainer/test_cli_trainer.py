"""In-process CLI tests of the training commands."""

import json
import re

from helpers import write_jsonl
from test_pairs_and_generate import make_beir
from test_mining_and_training import TOPICS


def test_import_generate_mine_train_export(cli, tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    beir = make_beir(tmp_path / "beir")
    assert "6 pairs" in cli("pairs", "import", beir, "--split", "train", "--out", tmp_path / "labelled.jsonl").stdout

    docs = [{"_id": k, "title": k.upper(), "text": v + ". It is documented in the runbook. Ask on-call first."} for k, v in TOPICS.items()]
    cli("corpus", "add", "ops", write_jsonl(tmp_path / "docs.jsonl", docs))
    cli("model", "register", "tiny", tiny_model_dir)
    gen = cli("pairs", "generate", "--corpus", "ops", "--per-doc", "2", "--out", tmp_path / "gen.jsonl",
              "--round-trip", "tiny@1", "--top-k", "8").stdout
    assert "16 generated" in gen and "round trip" in gen
    written = [json.loads(l) for l in (tmp_path / "gen.jsonl").read_text().splitlines()]
    assert written and all(p["source"] == "extractive" for p in written)

    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"query": f"about {k}", "doc_id": k} for k in TOPICS] * 3)
    mined_out = cli("pairs", "mine", pairs, "--model", "tiny@1", "--corpus", "ops", "--out", tmp_path / "mined.jsonl",
                    "-n", "2", "--margin", "2").stdout
    assert "false-negative filter" in mined_out
    mined = [json.loads(l) for l in (tmp_path / "mined.jsonl").read_text().splitlines()]
    assert all(len(m["negatives"]) == 2 for m in mined)
    assert all("mined" not in m for m in mined)  # a margin of 2 is already looser than any to try
    kept = cli("pairs", "mine", pairs, "-m", "tiny@1", "-c", "ops", "-o", tmp_path / "kept.jsonl", "-n", "2").stdout
    assert "candidates up to margin 1 kept for train to try" in kept
    assert all(json.loads(l)["mined"]["margins"] == [0.95, 1.0] for l in (tmp_path / "kept.jsonl").read_text().splitlines())
    bad = cli("pairs", "mine", pairs, "-m", "tiny@1", "-c", "ops", "-o", tmp_path / "bad.jsonl", "--try-margin", "0.5",
              expect=2)
    assert "try_margin (0.5) must be at least margin (0.95)" in bad.stderr and "mining" not in bad.stderr
    assert not (tmp_path / "bad.jsonl").exists()

    trained = cli("train", "--base", "tiny@1", "--pairs", tmp_path / "mined.jsonl", "--epochs", "1",
                  "--batch-size", "4", "--lr", "1e-4", "--interpolate", "none", "--json")
    result = json.loads(trained.stdout)
    assert result["ref"] == "tiny@2" and result["alpha"] is None
    assert "widget examples" not in trained.stderr  # no library progress bars in the CLI's output
    shown = json.loads(cli("model", "show", "tiny@2", "--json").stdout)
    assert shown["parent"] == "tiny@1" and len(shown["params"]["pairs_sha256"]) == 1

    cli("model", "export", "tiny@2", tmp_path / "exported")
    emb = SentenceTransformer(str(tmp_path / "exported"), device="cpu").encode(["kafka lag"])
    assert emb.shape == (1, 32)
    assert "already exists" in cli("model", "export", "tiny@2", tmp_path / "exported", expect=2).stderr
    assert "--base-url" in cli("pairs", "generate", "--corpus", "ops", "-g", "openai", "--out", tmp_path / "x.jsonl", expect=2).stderr
    refused = cli("train", "--base", "tiny@1", "--pairs", tmp_path / "mined.jsonl", "--eval-fraction", "0", expect=2).stderr
    assert "auto" in refused and "domain score" in refused and "--interpolate none" in refused  # no silent alpha 1.0

    from test_mining_and_training import make_dev_beir

    sts = tmp_path / "sts.tsv"
    sts.write_text("score\tsentence1\tsentence2\n5\ta cat sits\ta cat is sitting\n0\ta cat sits\tstocks fell\n")
    res = cli("train", "--base", "tiny@1", "--pairs", tmp_path / "mined.jsonl", "--epochs", "1", "--batch-size", "4",
              "--general-eval", sts, "--interpolate", "auto", "--max-general-drop", "100", "--domain-dev", make_dev_beir(tmp_path / "dev"))
    assert res.stdout.strip() == "tiny@3" and "nDCG@10 on " in res.stderr and "(dev, " in res.stderr
    assert json.loads(cli("model", "show", "tiny@3", "--json").stdout)["params"]["domain_dev_split"] == "dev"


def test_train_with_no_flags_runs_the_default_recipe_and_says_what_it_did(cli, tiny_model_dir, tmp_path):
    docs = [{"_id": k, "title": k.upper(), "text": v} for k, v in TOPICS.items()]
    cli("corpus", "add", "ops", write_jsonl(tmp_path / "docs.jsonl", docs))
    cli("model", "register", "tiny", tiny_model_dir)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"query": f"{w} {k}", "doc_id": k} for k in TOPICS for w in ("about", "fix")])
    cli("pairs", "mine", pairs, "--model", "tiny@1", "--corpus", "ops", "--out", tmp_path / "mined.jsonl", "--margin", "2")

    res = cli("train", "--base", "tiny@1", "--pairs", tmp_path / "mined.jsonl")
    report = " ".join(res.stderr.split())  # the report as words, whatever the terminal wrapped
    shown = json.loads(cli("model", "show", res.stdout.strip(), "--json").stdout)
    recipe, chosen = shown["metrics"]["recipe"], shown["params"]["chosen"]
    assert (f"recipe (labelled pairs; lr and steps chosen on dev): lr {chosen['lr']:g}, {chosen['step']} steps of 32 "
            "pairs, up to 3 epochs") in report
    # every rate of the grid was tried on dev; the report shows each trial and the kept rate's dev curve
    assert recipe["lrs_tried"] == [2e-5, 5e-5, 1e-4] and chosen["lr"] in recipe["lrs_tried"]
    for lr in ("2e-05", "5e-05", "0.0001"):
        assert f"lr {lr} " in report
    assert "search on dev (" in report and "budget minutes)" in report and f"dev curve of lr {chosen['lr']:g}" in report
    assert chosen["on_dev"] and chosen["dev_ndcg@10"] is not None and chosen["stopped"] in report
    assert "general nDCG@10 on bundled:general-definitions:" in report  # the retrieval rail, besides STS
    assert "upper end of the one-sided 95% interval" in report and "95% upper bound of the drop" in report
    assert "whose 2 general scores stay within 1 point(s)" in report
    assert "general Spearman on bundled:general-sts:" in report and "domain nDCG@10 on held-out pairs (1 query)" in report
    alpha = shown["metrics"]["alpha"]
    # chosen by the sweep, said why: one held-out query tells no alpha from another, so the nearest the base
    assert re.search(rf"alpha {alpha:g}: (best held-out nDCG@10|nearest the base within one standard error "
                     r"\(\d+\.\d\d\) of the best held-out nDCG@10 \(\d+\.\d\d at alpha [\d.]+\)) among alphas 1", report)
    assert "nan" not in report and "->" in report
    assert shown["params"]["general_eval"] == "bundled:general-sts" and shown["params"]["interpolate"] == "auto"


def test_generate_with_the_local_generator_and_few_shot_examples(cli, tmp_path):
    from test_pairs_and_generate import make_tiny_lm

    cli("corpus", "add", "ops", write_jsonl(tmp_path / "docs.jsonl", [{"_id": k, "text": v} for k, v in TOPICS.items()]))
    lm = make_tiny_lm(tmp_path / "lm")
    examples = write_jsonl(tmp_path / "shots.jsonl", [{"document": "Certificates renew 30 days early.", "query": "certs renew"}])
    res = cli("pairs", "generate", "-c", "ops", "-g", "local", "--local-model", lm, "--few-shot", examples, "--batch-size", "4",
              "--per-doc", "2", "--temperature", "0.9", "--max-words", "1000", "--min-words", "1", "--out", tmp_path / "gen.jsonl")
    written = [json.loads(l) for l in (tmp_path / "gen.jsonl").read_text().splitlines()]
    assert f"{len(written)} kept" in res.stdout and len(TOPICS) <= len(written) <= 2 * len(TOPICS)  # an empty answer is skipped
    assert {p["source"] for p in written} == {"local"} and {p["doc_id"] for p in written} == set(TOPICS)
    assert "generating (cpu)" in res.stderr

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"document": "x"}])
    res = cli("pairs", "generate", "-c", "ops", "-g", "local", "--local-model", lm, "--few-shot", bad,
              "--out", tmp_path / "never.jsonl", expect=2)
    assert "bad.jsonl:1" in res.stderr and "query" in res.stderr and not (tmp_path / "never.jsonl").exists()
