"""The pipeline end to end on a tiny model: stages run in order, promote only on a pass, and a
rerun redoes only what changed."""

import json

import pytest

from helpers import StoreCli, write_jsonl
from embedops.errors import InputError
from embedops.app.pipeline import PipelineConfig
from embedops.registry import Registry
from embedops.store import Store

pytestmark = pytest.mark.slow

TOPICS = {
    "pgx": "PGX: OOMKilled on pri, bump limits", "hawk": "HAWK: p95 over SLO, check saturation",
    "owl": "OWL: DAG task failed at 02:00, rerun task", "kite": "KITE: 5xx from search, failover to sby",
    "mole": "MOLE: lag over 10k, skip poison msg", "flagr": "FLAGR: kill switch for all tenants",
    "drift": "DRIFT: purge path, approval in #traffic", "nest": "NEST: restore drill quarterly",
}


@pytest.fixture
def setup(tmp_path, tiny_model_dir):
    beir = tmp_path / "domain"
    write_jsonl(beir / "corpus.jsonl", [{"_id": k, "title": k.upper(), "text": v} for k, v in TOPICS.items()])
    write_jsonl(beir / "queries.jsonl", [{"_id": f"q-{k}", "text": f"problem with {k}"} for k in TOPICS])
    (beir / "qrels").mkdir()
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q-{k}\t{k}\t1\n" for k in TOPICS))
    write_jsonl(tmp_path / "pairs.jsonl", [{"query": f"{k} issue {i}", "doc_id": k} for k in TOPICS for i in range(3)])
    config = tmp_path / "pipeline.toml"
    config.write_text(f"""
[corpus]
name = "ops"
path = "domain"
[base]
model = "{tiny_model_dir}"
name = "tiny"
[pairs]
labelled = {{ file = "pairs.jsonl" }}
generated = {{ generator = "extractive", per_doc = 1, round_trip_top_k = 0 }}
[mine]
negatives = 1
margin = 2.0
[train]
epochs = 1
batch_size = 8
lr = 1e-4
eval_fraction = 0.0
interpolate = "none"
[guards]
gold = "domain"
general = ["sts.tsv"]
policy = "policy.toml"
[index]
nprobes = 10
[promote]
alias = "production"
""")
    # 8 gold queries and 3 STS pairs: far below the default evidence minimums, so they are lowered here
    # (a permissive policy: the pipeline's plumbing is under test, not its lift; the gates have their own tests)
    (tmp_path / "policy.toml").write_text("[guards]\ntolerance = 100.0\nmin_lift = -100.0\nmax_drop = 100.0\n"
                                          "fine_tunes_must_lift = false\n"
                                          "bootstrap_resamples = 500\nmin_gold_queries = 5\nmin_slice_queries = 2\n"
                                          "slice_tolerance = 100.0\nmin_sts_pairs = 3\n")
    (tmp_path / "sts.tsv").write_text("score\tsentence1\tsentence2\n5\ta cat sits\ta cat is sitting\n"
                                      "0\ta cat sits\tstocks fell\n4\tmen play soccer\tboys play football\n")
    return tmp_path, config


def test_pipeline_promotes_on_pass_and_rerun_is_cached(setup):
    root, config = setup
    cli = StoreCli(str(root / "store"))
    result = cli("pipeline", "run", config, "--report", root / "run.json")
    report = json.loads((root / "run.json").read_text())
    names = [s["name"] for s in report["stages"]]
    assert names == ["corpus", "base", "production", "pairs", "mine", "train", "index", "guards", "shadow", "promote"]
    assert report["verdict"] == "pass" and report["promoted"] is True
    reg = Registry(Store.open(str(root / "store")))
    assert reg.aliases.current("production") == report["candidate_index"]
    head = reg.aliases.get("production")
    assert head.previous == report["production_before"]
    assert head.report_id == report["stages"][names.index("guards")]["outputs"]["report_id"] and not head.override
    first = reg.aliases.history("production")[0]
    assert first.override and "first production index" in first.reason  # the baseline: explicit, audited
    for index_id in (report["candidate_index"], first.value):  # both built as [index] says, and recorded
        assert reg.indexes.get(index_id).settings.index.nprobes == 10
    assert "verdict pass" in result.stdout
    shadow = report["stages"][names.index("shadow")]["outputs"]
    assert f"overlap_at_k={shadow['overlap_at_k']:.4g}," in result.stdout  # not 0.5249999999999999

    again = json.loads(cli("pipeline", "run", config, "--json").stdout)
    cached = {s["name"]: s["cached"] for s in again["stages"]}
    assert all(cached[n] for n in ("base", "pairs", "mine", "train", "index"))
    assert len(reg.models.list()) == 2  # nothing retrained
    assert again["promoted"] and again["verdict"] == "pass" and "guards" not in cached  # it already serves

    # change a training setting: pairs and mining are reused, training and what follows rerun
    config.write_text(config.read_text().replace("lr = 1e-4", "lr = 2e-4"))
    third = json.loads(cli("pipeline", "run", config, "--json").stdout)
    cached = {s["name"]: s["cached"] for s in third["stages"]}
    assert cached["pairs"] and cached["mine"] and not cached["train"] and not cached["index"]
    assert len(reg.models.list()) == 3


def test_a_pipeline_with_int8_vectors_builds_guards_and_promotes_int8_indexes(setup):
    root, config = setup
    config.write_text(config.read_text().replace("[index]\nnprobes = 10", '[index]\nvectors = "int8"'))
    cli = StoreCli(str(root / "store"))
    report = json.loads(cli("pipeline", "run", config, "--json").stdout)
    assert report["verdict"] == "pass" and report["promoted"] is True
    reg = Registry(Store.open(str(root / "store")))
    first = reg.aliases.history("production")[0].value
    for index_id in (report["candidate_index"], first):  # the baseline and the candidate, both as [index] says
        rec = reg.indexes.get(index_id)
        assert rec.settings.index.vectors == "int8" and len(rec.params["calibration"][0]) == 32
        assert reg.store.open_table(rec.table_name).schema.field("vector").type.value_type.bit_width == 8
    guards = next(s for s in report["stages"] if s["name"] == "guards")["outputs"]
    integrity = next(g for g in guards["gates"] if g["name"] == "index_integrity")
    assert integrity["status"] == "pass" and "int8 vectors decode cleanly" in integrity["reason"]
    assert "recall vs float32 not measured" in integrity["reason"]  # the pipeline built no float32 index
    hits = json.loads(cli("search", "problem with kafka", "--alias", "production", "-k", "3", "--json").stdout)
    assert hits["index_id"] == report["candidate_index"] and len(hits["hits"]) == 3


def test_long_stages_report_their_steps_with_a_total(setup):
    from embedops.app.pipeline import Pipeline

    root, config = setup
    seen: dict[str, list[tuple[int, int | None]]] = {}
    stages: list[tuple[str, str]] = []
    reg = Registry(Store.open(str(root / "store")))
    Pipeline(reg, PipelineConfig.from_toml(config), on_stage=lambda n, s: stages.append((n, s)),
             on_progress=lambda n, d, t: seen.setdefault(n, []).append((d, t))).run()
    assert {"production", "mine", "train", "index"} <= set(seen)  # the baseline build, mining, training, the build
    for name in ("production", "mine", "index"):
        done, total = seen[name][-1]
        assert total and done == total, (name, seen[name])  # they finish at their total
    steps = [d for d, _ in seen["train"]]
    assert steps == sorted(steps) and all(t == seen["train"][-1][1] and t >= steps[-1] for _, t in seen["train"])
    # a stage's progress comes between its "running" and its "done"
    running = stages.index(("train", "running"))
    assert any(n == "train" and s.startswith("done") for n, s in stages[running:])


def test_failing_guards_leave_production_untouched(setup):
    root, config = setup
    (root / "policy.toml").write_text("[guards]\nmin_lift = 50.0\nbootstrap_resamples = 500\n")
    cli = StoreCli(str(root / "store"))
    result = cli("pipeline", "run", config, "--report", root / "run.json", expect=1)
    report = json.loads((root / "run.json").read_text())
    assert report["verdict"] == "fail" and report["promoted"] is False
    guards = next(s for s in report["stages"] if s["name"] == "guards")["outputs"]
    domain = next(g for g in guards["gates"] if g["name"] == "domain")
    said = " ".join(result.stdout.split())  # the user is told why, in full, not only the verdict
    assert domain["status"] == "fail" and f"refused by domain: {domain['reason'][:60]}" in said
    reg = Registry(Store.open(str(root / "store")))
    assert reg.aliases.current("production") == report["production_before"] != report["candidate_index"]


def test_without_a_general_benchmark_the_pipeline_does_not_promote(setup):
    root, config = setup
    config.write_text(config.read_text().replace('general = ["sts.tsv"]\n', ""))
    report = json.loads(StoreCli(str(root / "store"))("pipeline", "run", config, "--json", expect=1).stdout)
    guards = next(s for s in report["stages"] if s["name"] == "guards")["outputs"]
    forgetting = next(g for g in guards["gates"] if g["name"] == "forgetting")
    assert report["verdict"] == "fail" and not report["promoted"] and forgetting["status"] == "fail"
    reg = Registry(Store.open(str(root / "store")))
    assert reg.aliases.current("production") == report["production_before"]


def test_guards_section_takes_policy_thresholds_inline(setup):
    root, config = setup
    config.write_text(config.read_text().replace('policy = "policy.toml"\n',
                                                 'policy = "policy.toml"\nmin_lift = 50.0\ndomain_floor = 10.0\n'))
    cfg = PipelineConfig.from_toml(config)
    assert (cfg.policy.min_lift, cfg.policy.tolerance, cfg.policy.domain_floor) == (50.0, 100.0, 10.0)  # inline over file
    report = json.loads(StoreCli(str(root / "store"))("pipeline", "run", config, "--json", expect=1).stdout)
    assert report["verdict"] == "fail" and not report["promoted"]


BAD_CONFIG_LINES = {
    ("[train]", "lr_rate = 1e-4"): ("train.lr_rate", "unknown setting"),
    ("[train]", "seed = '3'"): ("train.seed", "must be int"),
    ("[mine]", "range_max = 1.5"): ("mine.range_max", "must be int"),
    ("[guards]", "confidence = 7.0"): ("guards.confidence", "must be < 1"),
    ("[guards]", "bootstrap_resamples = 0"): ("guards.bootstrap_resamples", "must be >= 100"),
    ("[promote]", "alais = 'shadow'"): ("promote.alias", None),
    ("[index]", "ann = 'hnsw'"): ("index.ann", "unknown kind 'hnsw'; choose one of auto, none, ivf_pq"),
    ("[index]", "refine_factor = 0"): ("index.refine_factor", "must be a whole number >= 1, got 0"),
    ("[index]", "vectors = 'int4'"): ("index.vectors", "unknown kind 'int4'; choose one of float32, int8, binary"),
    ("[index]", "nprobs = 4"): ("index.nprobs", None),
}


@pytest.mark.parametrize("where", sorted(BAD_CONFIG_LINES))
def test_bad_config_keys_and_values_exit_2_naming_file_line_section_and_key(setup, where):
    root, config = setup
    header, line = where
    text = config.read_text().replace(f"{header}\n", f"{header}\n{line}\n", 1)
    config.write_text(text)
    key, message = BAD_CONFIG_LINES[where]
    lineno = text.splitlines().index(line) + 1
    result = StoreCli(str(root / "store"))("pipeline", "run", config, expect=2)
    err = " ".join(result.stderr.split())
    if message is None:  # a misspelt key is reported under its own name
        key, message = f"{header.strip('[]')}.{line.split()[0]}", "unknown setting"
    assert f"{config}:{lineno}: field '{key}': " in err and message in err
    assert not (root / "store").exists() or not (root / "store" / "pipeline").exists()  # nothing ran


def test_auto_interpolation_without_a_domain_scorer_is_refused_before_training(setup):
    root, config = setup
    config.write_text(config.read_text().replace('interpolate = "none"', "interpolate = 'auto'\n"
                                                 "general_eval = 'sts.tsv'"))
    with pytest.raises(InputError, match=r"field 'train': interpolate 'auto' chooses alpha by a domain score"):
        PipelineConfig.from_toml(config)
    assert not (root / "store").exists()


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[corpus]\nname = 'x'\npath = 'd'\n[pairs]\nlabelled = { file = 'p.jsonl' }\n")
    with pytest.raises(InputError, match="guards.gold"):
        PipelineConfig.from_toml(bad)
    bad.write_text("[corpus]\nname = 'x'\npath = 'd'\n[guards]\ngold = 'g'\n")
    with pytest.raises(InputError, match="pairs"):
        PipelineConfig.from_toml(bad)
    bad.write_text("[corpse]\n")
    with pytest.raises(InputError, match="unknown section"):
        PipelineConfig.from_toml(bad)


def test_example_config_parses():
    from helpers import REPO

    cfg = PipelineConfig.from_toml(REPO / "examples" / "pipeline-scifact.toml")
    assert cfg.corpus.name == "scifact" and cfg.train.interpolate == "auto" and len(cfg.guards.general) == 2
    assert cfg.labelled.split == "train"


def test_an_empty_train_section_runs_the_default_recipe_with_the_bundled_general_set(tmp_path):
    from embedops.trainer.train import TrainConfig

    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("[corpus]\nname = 'x'\npath = 'd'\n[guards]\ngold = 'g'\n[pairs]\nlabelled = { file = 'p.jsonl' }\n"
                        "[train]\n")
    cfg = PipelineConfig.from_toml(cfg_file)
    assert cfg.train == TrainConfig() and cfg.general_eval is None  # no flag a user must know; nothing to find
    assert cfg.train.interpolate == "auto" and cfg.train.max_seq_length == 128


def test_the_forgetting_gates_general_sets_are_the_rails_alpha_is_chosen_on(tmp_path):
    (tmp_path / "msmarco" / "qrels").mkdir(parents=True)  # a BEIR directory
    (tmp_path / "sts.tsv").write_text("score\tsentence1\tsentence2\n")
    head = "[corpus]\nname = 'x'\npath = 'd'\n[pairs]\nlabelled = { file = 'p.jsonl' }\n"
    guards = "[guards]\ngold = 'g'\ngeneral = ['sts.tsv', 'msmarco']\n"
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(head + guards)
    cfg = PipelineConfig.from_toml(cfg_file)
    assert cfg.train.general_retrieval == str(tmp_path / "msmarco") and cfg.general_eval == tmp_path / "sts.tsv"
    # what [train] names stands
    cfg_file.write_text(head + guards + "[train]\ngeneral_retrieval = 'bundled:general-retrieval'\n"
                        "general_eval = 'bundled:general-sts'\n")
    cfg = PipelineConfig.from_toml(cfg_file)
    assert cfg.train.general_retrieval == "bundled:general-retrieval" and str(cfg.general_eval) == "bundled:general-sts"
    # with no general set to judge by, the bundled rails
    cfg_file.write_text(head + "[guards]\ngold = 'g'\n")
    cfg = PipelineConfig.from_toml(cfg_file)
    assert cfg.train.general_retrieval == "bundled:general-definitions" and cfg.general_eval is None


def test_paths_in_the_generator_and_train_sections_are_relative_to_the_config(tmp_path):
    cfg_file = tmp_path / "conf" / "c.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text("[corpus]\nname = 'x'\npath = 'd'\n[guards]\ngold = 'g'\n"
                        "[pairs]\ngenerated = { generator = 'local', few_shot = 'shots.jsonl', batch_size = 64 }\n"
                        "[train]\ndomain_dev = 'dev-beir'\n")
    cfg = PipelineConfig.from_toml(cfg_file)
    assert cfg.generated.few_shot == str(cfg_file.parent / "shots.jsonl") and cfg.generated.batch_size == 64
    assert cfg.train.domain_dev == str(cfg_file.parent / "dev-beir")


def test_a_truncated_index_compares_with_the_base_model_at_its_full_dimension(setup):
    # the base model was not trained for 16 dimensions: truncated it would lose quality silently (and
    # flatter the candidate), so what serves before is the base at full size; the candidate is cut
    root, config = setup
    text = config.read_text().replace("[index]\nnprobes = 10", "[index]\nnprobes = 10\ndims = 16")
    config.write_text(text.replace('interpolate = "none"', 'interpolate = "none"\nmatryoshka_dims = [32, 16]'))
    report = json.loads(StoreCli(str(root / "store"))("pipeline", "run", config, "--json").stdout)
    reg = Registry(Store.open(str(root / "store")))
    before, candidate = reg.indexes.get(report["production_before"]), reg.indexes.get(report["candidate_index"])
    assert (before.model_ref, before.settings.index.dims) == ("tiny@1", None)
    assert (candidate.model_ref, candidate.settings.index.dims) == ("tiny@2", 16)
    assert report["promoted"] is True and reg.aliases.current("production") == candidate.index_id


def test_general_pairs_for_replay_reach_the_trainer_and_a_bad_share_is_named(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from embedops.app.pipeline import stages
    from embedops.trainer.pairs import TrainingPair, write_pairs

    cfg_file = tmp_path / "conf" / "c.toml"
    cfg_file.parent.mkdir()
    head = "[corpus]\nname = 'x'\npath = 'd'\n[guards]\ngold = 'g'\n[pairs]\nlabelled = { file = 'p.jsonl' }\n"
    cfg_file.write_text(head + "[train]\ngeneral_pairs = 'general.jsonl'\n")
    cfg = PipelineConfig.from_toml(cfg_file)
    assert cfg.general_pairs == tmp_path / "conf" / "general.jsonl" and cfg.train.replay_fraction == "auto"
    write_pairs(cfg.general_pairs, [TrainingPair("what is a kettle", "a pot for boiling water")])
    mined = write_pairs(tmp_path / "mined.jsonl", [TrainingPair("disk full", "prune images")])
    seen = {}
    monkeypatch.setattr(stages, "train", lambda *a, **kw: seen.update(kw) or SimpleNamespace(
        model=SimpleNamespace(ref="m@2"), alpha=1.0, metrics={"before": {}, "after": {}}))
    stages.fine_tune(None, cfg, stages.MinedOut(str(mined), "0" * 64, {}), "m@1")
    assert [p.query for p in seen["general_pairs"]] == ["what is a kettle"]
    cfg_file.write_text(head + "[train]\nreplay_fraction = 0.3\n")
    with pytest.raises(InputError, match=r"field 'train.replay_fraction': mixes general pairs .* general_pairs"):
        PipelineConfig.from_toml(cfg_file)
    cfg_file.write_text(head + "[train]\nreplay_fraction = 1.5\n")
    with pytest.raises(InputError, match=r"c.toml.*field 'train'.*--replay takes 'auto' or a share in \[0, 1\)"):
        PipelineConfig.from_toml(cfg_file)
