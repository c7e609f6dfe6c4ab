"""The pipeline end to end on a tiny model: stages run in order, promote only on a pass, and a
rerun redoes only what changed."""

import json

import pytest

from helpers import StoreCli, write_jsonl
from embedops.errors import InputError
from embedops.pipeline import PipelineConfig
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
[guards]
gold = "domain"
policy = "policy.toml"
[promote]
alias = "production"
""")
    (tmp_path / "policy.toml").write_text("[guards]\ntolerance = 100.0\nmin_lift = -100.0\nbootstrap_resamples = 500\n")
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
    assert reg.aliases.get("production").previous == report["production_before"]
    assert "verdict pass" in result.stdout

    again = json.loads(cli("pipeline", "run", config, "--json").stdout)
    cached = {s["name"]: s["cached"] for s in again["stages"]}
    assert all(cached[n] for n in ("base", "pairs", "mine", "train", "index"))
    assert len(reg.models.list()) == 2  # nothing retrained

    # change a training setting: pairs and mining are reused, training and what follows rerun
    config.write_text(config.read_text().replace("lr = 1e-4", "lr = 2e-4"))
    third = json.loads(cli("pipeline", "run", config, "--json").stdout)
    cached = {s["name"]: s["cached"] for s in third["stages"]}
    assert cached["pairs"] and cached["mine"] and not cached["train"] and not cached["index"]
    assert len(reg.models.list()) == 3


def test_failing_guards_leave_production_untouched(setup):
    root, config = setup
    (root / "policy.toml").write_text("[guards]\nmin_lift = 50.0\nbootstrap_resamples = 500\n")
    cli = StoreCli(str(root / "store"))
    result = cli("pipeline", "run", config, "--json", expect=1)
    report = json.loads(result.stdout)
    assert report["verdict"] == "fail" and report["promoted"] is False
    reg = Registry(Store.open(str(root / "store")))
    assert reg.aliases.current("production") == report["production_before"] != report["candidate_index"]


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
    assert cfg.corpus_name == "scifact" and cfg.train["interpolate"] == "auto" and len(cfg.general) == 2
    assert cfg.labelled["split"] == "train"


def test_paths_in_the_generator_and_train_sections_are_relative_to_the_config(tmp_path):
    cfg_file = tmp_path / "conf" / "c.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text("[corpus]\nname = 'x'\npath = 'd'\n[guards]\ngold = 'g'\n"
                        "[pairs]\ngenerated = { generator = 'local', few_shot = 'shots.jsonl', batch_size = 64 }\n"
                        "[train]\ndomain_dev = 'dev-beir'\n")
    cfg = PipelineConfig.from_toml(cfg_file)
    assert cfg.generated["few_shot"] == str(cfg_file.parent / "shots.jsonl") and cfg.generated["batch_size"] == 64
    assert cfg.train["domain_dev"] == str(cfg_file.parent / "dev-beir")
