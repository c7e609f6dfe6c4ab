"""``embedops pipeline run CONFIG.toml``: the main job, from an off-the-shelf model to a fine-tuned,
guarded, promoted, rollback-able one.

Stages: corpus -> base model -> production baseline -> pairs (labelled and/or generated) -> mine ->
train (with forgetting control) -> ONNX export + candidate index -> guards -> shadow -> promote
(only if every gate passes; otherwise stop with the verdict and leave production untouched).

Each stage's output is content-addressed: its key hashes the stage's settings and the keys or
checksums of its inputs, and the result is kept under ``<store>/pipeline/<stage>/<key>.json``.
Rerunning after a crash or a config change redoes only the stages whose key changed. Model
training additionally resumes from its last epoch checkpoint and index builds from their last
committed chunk.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedops.config import TomlFile, check_field_types
from embedops.errors import InputError, InputProblem, UsageError
from embedops.registry import Policy, Registry, load_policy

STAGES = ("corpus", "base", "production", "pairs", "mine", "train", "index", "guards", "shadow", "promote")


_SECTION_KEYS = {
    "corpus": ("name", "path"),
    "base": ("model", "name"),
    "pairs": ("labelled", "generated"),
    "pairs.labelled": ("beir", "split", "file"),
    "pairs.generated": ("generator", "per_doc", "limit", "round_trip_top_k", "seed", "title_query", "few_shot",
                        "model_dir", "gguf_file", "batch_size", "device", "temperature", "base_url", "model"),
    "mine": ("negatives", "margin", "range_min", "range_max"),
    "promote": ("alias", "auto"),
}
_GUARDS_KEYS = ("gold", "general", "policy")
_TRAIN_EXTRA = ("general_eval",)


@dataclass
class PipelineConfig:
    """Settings of a pipeline run; see examples/pipeline-scifact.toml for every field.

    ``policy`` is the promotion policy in force: the built-in defaults, overridden by the file named
    in ``[guards] policy`` and then by thresholds written inline in ``[guards]``."""

    corpus_name: str
    corpus_path: Path
    base_model: str = "bundled:all-MiniLM-L6-v2"
    base_name: str = "minilm"
    labelled: dict[str, Any] | None = None      # {"beir": DIR, "split": "train"} or {"file": PAIRS.jsonl}
    generated: dict[str, Any] | None = None     # {"generator": "extractive"|"openai"|"local", "per_doc", "limit", "round_trip_top_k", ...}
    mine: dict[str, Any] = field(default_factory=lambda: {"negatives": 3, "margin": 0.95, "range_min": 0, "range_max": 50})
    train: dict[str, Any] = field(default_factory=dict)
    gold: Path | None = None
    general: list[Path] = field(default_factory=list)
    policy: Policy = field(default_factory=Policy)
    alias: str = "production"
    auto_promote: bool = True
    source: str = "<config>"

    def train_config(self):
        """The :class:`~embedops.trainer.train.TrainConfig` of ``[train]`` (general_eval aside)."""
        from embedops.trainer.train import TrainConfig

        return TrainConfig(**{k: v for k, v in self.train.items() if k not in _TRAIN_EXTRA})

    @classmethod
    def from_toml(cls, path: Path | str) -> "PipelineConfig":
        path = Path(path)
        if not path.is_file():
            raise InputError(InputProblem(str(path), None, None, "no such config file"))
        return cls.from_file(TomlFile.read(path), base_dir=path.parent)

    @classmethod
    def from_dict(cls, data: dict, base_dir: Path = Path("."), source: str = "<config>") -> "PipelineConfig":
        return cls.from_file(TomlFile(source, "", data), base_dir=base_dir)

    @classmethod
    def from_file(cls, toml: TomlFile, base_dir: Path = Path(".")) -> "PipelineConfig":
        """Read and check every section and key: unknown ones, wrong types and values out of range
        are InputErrors naming the file, line and ``section.key``; nothing is run on a bad config."""
        from embedops.trainer.train import TrainConfig

        source = toml.path
        toml.check_sections(["corpus", "base", "pairs", "mine", "train", "guards", "promote"])
        for section, keys in _SECTION_KEYS.items():
            toml.check_keys(section, toml.section(section), keys)

        def need(section: str, key: str):
            value = toml.section(section).get(key)
            if value is None:
                raise toml.error(section, key, "required")
            return value

        def rel(p):
            return None if p is None else (base_dir / p if not str(p).startswith(("bundled:", "/")) else Path(p))

        pairs = toml.section("pairs")
        labelled = dict(pairs["labelled"]) if "labelled" in pairs else None
        if labelled:
            for k in ("beir", "file"):
                if k in labelled:
                    labelled[k] = str(rel(labelled[k]))
        generated = dict(pairs["generated"]) if "generated" in pairs else None
        if generated and generated.get("generator", "extractive") not in ("extractive", "openai", "local"):
            raise toml.error("pairs.generated", "generator", "use extractive, openai or local")
        for k in ("few_shot", "model_dir"):
            if generated and k in generated:
                generated[k] = str(rel(generated[k]))
        if not labelled and not generated:
            raise toml.error("pairs", None, "give pairs.labelled and/or pairs.generated")

        train = dict(toml.section("train"))
        toml.check_keys("train", train, list(TrainConfig.__dataclass_fields__) + list(_TRAIN_EXTRA))
        check_field_types(toml, "train", train, {k: f.type for k, f in TrainConfig.__dataclass_fields__.items()}
                          | {"general_eval": "str"})
        check_field_types(toml, "mine", toml.section("mine"),
                          {"negatives": "int", "margin": "float", "range_min": "int", "range_max": "int"})
        check_field_types(toml, "promote", toml.section("promote"), {"alias": "str", "auto": "bool"})
        for k in ("general_eval", "domain_dev"):
            if k in train:
                train[k] = str(rel(train[k]))
        try:
            tcfg = TrainConfig(**{k: v for k, v in train.items() if k not in _TRAIN_EXTRA})
        except (UsageError, TypeError) as exc:
            raise toml.error("train", None, str(exc)) from None
        if tcfg.interpolate == "auto" and not train.get("general_eval"):
            raise toml.error("train", "interpolate", "'auto' needs train.general_eval (an STS TSV) to stay within")

        guards = toml.section("guards")
        check_field_types(toml, "guards", guards, {"gold": "str", "general": "list", "policy": "str"})
        check_field_types(toml, "corpus", toml.section("corpus"), {"name": "str", "path": "str"})
        check_field_types(toml, "base", toml.section("base"), {"model": "str", "name": "str"})
        policy = Policy()
        if "policy" in guards:
            policy = load_policy(rel(guards["policy"]))
        policy = Policy.from_section(toml, "guards", guards, base=policy, ignore=_GUARDS_KEYS)
        general = guards.get("general", [])

        mine = toml.section("mine")
        base = toml.section("base")
        model = base.get("model", "bundled:all-MiniLM-L6-v2")
        promote = toml.section("promote")
        return cls(
            corpus_name=need("corpus", "name"), corpus_path=rel(need("corpus", "path")),
            base_model=model if model.startswith("bundled:") or "@" in model else str(rel(model)),
            base_name=base.get("name", "minilm"), labelled=labelled, generated=generated,
            mine={**cls.__dataclass_fields__["mine"].default_factory(), **mine}, train=train,
            gold=rel(need("guards", "gold")), general=[rel(g) for g in general], policy=policy,
            alias=promote.get("alias", "production"), auto_promote=bool(promote.get("auto", True)), source=source,
        )


@dataclass
class StageResult:
    name: str
    key: str
    cached: bool
    seconds: float
    outputs: dict[str, Any]


@dataclass
class PipelineReport:
    stages: list[StageResult] = field(default_factory=list)
    promoted: bool = False
    verdict: str | None = None
    candidate_index: str | None = None
    production_before: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "verdict": self.verdict, "candidate_index": self.candidate_index,
                "production_before": self.production_before, "stages": [asdict(s) for s in self.stages]}

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


class Pipeline:
    """Runs the stages in order over one registry; ``on_stage(name, status)`` reports progress."""

    def __init__(self, registry: Registry, config: PipelineConfig,
                 on_stage: Callable[[str, str], None] | None = None):
        self.registry = registry
        self.config = config
        self.on_stage = on_stage or (lambda name, status: None)
        self.dir = registry.store.root / "pipeline"
        self.report = PipelineReport()

    def _stage(self, name: str, key: str, fn: Callable[[Path], dict[str, Any]],
               valid: Callable[[dict], bool] = lambda out: True) -> dict[str, Any]:
        done = self.dir / name / f"{key}.json"
        start = time.perf_counter()
        if done.is_file():
            outputs = json.loads(done.read_text())
            if valid(outputs):
                self.on_stage(name, "cached")
                self.report.stages.append(StageResult(name, key, True, 0.0, outputs))
                return outputs
        self.on_stage(name, "running")
        work = self.dir / name / key
        work.mkdir(parents=True, exist_ok=True)
        outputs = fn(work)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(outputs, indent=2, sort_keys=True, default=str))
        tmp.replace(done)
        seconds = time.perf_counter() - start
        self.report.stages.append(StageResult(name, key, False, seconds, outputs))
        self.on_stage(name, f"done in {seconds:.1f}s")
        return outputs

    def run(self) -> PipelineReport:
        from embedops.corpus import Document
        from embedops.guards import run_guards
        from embedops.beir import benchmark_digest, read_gold
        from embedops.reembed import IndexBuild, Searcher, find_ready_index
        from embedops.reembed.shadow import run_shadow
        from embedops.trainer.generate import ExtractiveGenerator, OpenAIGenerator, filter_pairs
        from embedops.trainer.mining import mine_hard_negatives, round_trip_ranker
        from embedops.trainer.pairs import TrainingPair, file_sha256, import_beir, read_pairs, write_pairs
        from embedops.trainer.train import train

        reg, cfg = self.registry, self.config
        policy = cfg.policy

        # corpus: idempotent by itself (counts changes), keyed by the corpus table version it yields
        t = time.perf_counter()
        self.on_stage("corpus", "running")
        change = reg.corpora.add(cfg.corpus_name, cfg.corpus_path)
        self.report.stages.append(StageResult("corpus", str(change.version), False, time.perf_counter() - t, change.__dict__))
        corpus_version = change.version

        base = self._stage("base", _key(cfg.base_model, cfg.base_name),
                           lambda work: {"ref": reg.models.register(cfg.base_name, cfg.base_model, notes="pipeline base").ref},
                           valid=lambda out: _exists_model(reg, out["ref"]))
        base_ref = base["ref"]
        base_digest = reg.models.get(base_ref).digest

        current = reg.aliases.get(cfg.alias)
        if current is None or current.value is None:
            def baseline(work):
                idx = find_ready_index(reg, base_ref, cfg.corpus_name) or IndexBuild(reg, base_ref, cfg.corpus_name, wait=True).run().index
                reg.promote(idx.index_id, cfg.alias, expect=None, override=True,
                            reason=f"pipeline: first {cfg.alias} index, the unmodified base model {base_ref}")
                return {"index_id": idx.index_id}
            self._stage("production", _key("baseline", base_digest, cfg.corpus_name, cfg.alias), baseline)
        self.report.production_before = reg.aliases.current(cfg.alias)

        texts = reg.corpora.texts(cfg.corpus_name)

        def make_pairs(work):
            pairs: list[TrainingPair] = []
            counts: dict[str, Any] = {}
            if cfg.labelled:
                if "beir" in cfg.labelled:
                    got = import_beir(cfg.labelled["beir"], cfg.labelled.get("split", "train"))
                else:
                    got = read_pairs(cfg.labelled["file"], corpus=texts)
                pairs += got
                counts["labelled"] = len(got)
            if cfg.generated:
                g = cfg.generated
                rows = reg.corpora.documents(cfg.corpus_name).to_pylist()[: g.get("limit")]
                docs = [Document(r["id"], r["text"], r["title"]) for r in rows]
                if g.get("generator") == "local":
                    from embedops.trainer.generate import LocalGenerator, read_few_shot

                    gen = LocalGenerator(g.get("model_dir"), g.get("gguf_file"), per_doc=g.get("per_doc", 1),
                                         few_shot=read_few_shot(g["few_shot"]) if g.get("few_shot") else None,
                                         batch_size=g.get("batch_size", 8), device=g.get("device"),
                                         temperature=g.get("temperature", 0.0), seed=g.get("seed", 0),
                                         cache_dir=reg.store.root / "cache" / "local-llm")
                elif g.get("generator", "extractive") == "openai":
                    gen = OpenAIGenerator(base_url=g["base_url"], model=g["model"], per_doc=g.get("per_doc", 3),
                                          cache_dir=reg.store.root / "cache" / "llm")
                else:
                    gen = ExtractiveGenerator(per_doc=g.get("per_doc", 1), seed=g.get("seed", 0),
                                              title_query=g.get("title_query", False))
                top_k = g.get("round_trip_top_k", 10)
                rank_of = round_trip_ranker(reg, base_ref, cfg.corpus_name, top_k) if top_k else None
                kept, rep = filter_pairs(gen.generate(docs), rank_of=rank_of, top_k=top_k or 10)
                pairs += kept
                counts["generated"] = rep.to_dict()
            path = write_pairs(work / "pairs.jsonl", pairs)
            return {"file": str(path), "sha256": file_sha256(path), "pairs": len(pairs), "counts": counts}

        labelled_hash = (_sha(Path(cfg.labelled["file"])) if cfg.labelled and "file" in cfg.labelled else
                         _sha(Path(cfg.labelled["beir"]) / "qrels" / f"{cfg.labelled.get('split', 'train')}.tsv")
                         if cfg.labelled else None)
        pairs = self._stage("pairs", _key(cfg.labelled, labelled_hash, cfg.generated, corpus_version, base_digest),
                            make_pairs, valid=lambda out: Path(out["file"]).is_file())

        def mine(work):
            mined, rep = mine_hard_negatives(reg, read_pairs(pairs["file"]), base_ref, cfg.corpus_name,
                                             num_negatives=int(cfg.mine["negatives"]), margin=float(cfg.mine["margin"]),
                                             range_min=int(cfg.mine["range_min"]), range_max=int(cfg.mine["range_max"]))
            path = write_pairs(work / "mined.jsonl", mined)
            return {"file": str(path), "sha256": file_sha256(path), "report": rep.to_dict()}

        mined = self._stage("mine", _key(pairs["sha256"], cfg.mine, base_digest, corpus_version), mine,
                            valid=lambda out: Path(out["file"]).is_file())

        train_config = cfg.train_config()
        tcfg = {k: v for k, v in cfg.train.items() if k not in _TRAIN_EXTRA}  # the settings given: the stage key
        general_eval = cfg.train.get("general_eval")

        def do_train(work):
            result = train(reg, base_ref, read_pairs(mined["file"]), name=cfg.base_name,
                           general_eval=Path(general_eval) if general_eval else None,
                           config=train_config, pair_hashes=[mined["sha256"]])
            return {"ref": result.model.ref, "alpha": result.alpha, "metrics": {k: result.metrics[k] for k in ("before", "after")}}

        trained = self._stage("train", _key(mined["sha256"], tcfg, base_digest,
                                            _sha(Path(general_eval)) if general_eval else None),
                              do_train, valid=lambda out: _exists_model(reg, out["ref"]))
        cand_ref = trained["ref"]

        def build(work):
            idx = find_ready_index(reg, cand_ref, cfg.corpus_name) or IndexBuild(reg, cand_ref, cfg.corpus_name, wait=True).run().index
            return {"index_id": idx.index_id, "table_version": idx.table_version}

        index = self._stage("index", _key(reg.models.get(cand_ref).digest, cfg.corpus_name, corpus_version), build,
                            valid=lambda out: _ready(reg, out["index_id"]))
        self.report.candidate_index = index["index_id"]

        head = reg.aliases.get(cfg.alias)
        if head is not None and head.value == index["index_id"]:  # a rerun after this candidate was promoted
            self.report.verdict = "pass" if head.report_id else "override"
            self.report.promoted = True
            self.on_stage("promote", f"{cfg.alias} already serves {index['index_id']} ("
                          + (f"guard report {head.report_id})" if head.report_id else "an override)"))
            return self.report

        queries, qrels, gold_hash = read_gold(cfg.gold)

        def guard(work):
            r = run_guards(reg, index["index_id"], gold=cfg.gold, general=cfg.general, policy=policy,
                           alias=cfg.alias, html_dir=work / "report")
            return {"verdict": r.verdict, "report_id": r.stored.report_id, "html": str(r.html),
                    "gates": [{k: g.to_dict()[k] for k in ("name", "status", "value", "threshold", "reason")} for g in r.gates],
                    "domain": {k: v for k, v in next(g for g in r.gates if g.name == "domain").evidence.items()
                               if k in ("production", "candidate", "mean_lift", "ci_low", "ci_high")},
                    "general": next(g for g in r.gates if g.name == "forgetting").evidence.get("benchmarks", [])}

        general_hashes = [benchmark_digest(g) for g in cfg.general]
        guards = self._stage("guards", _key(index, policy.hash, gold_hash, general_hashes, self.report.production_before), guard)
        self.report.verdict = guards["verdict"]

        def shadow(work):
            rep = run_shadow(Searcher(reg), index["index_id"], queries, qrels=qrels, k=10, alias=cfg.alias)
            return {k: v for k, v in rep.to_dict().items() if k != "movers"} | {"movers": rep.movers[:5]}

        self._stage("shadow", _key(index, gold_hash, self.report.production_before), shadow)

        if guards["verdict"] == "pass" and cfg.auto_promote:
            if reg.aliases.current(cfg.alias) != index["index_id"]:
                t = time.perf_counter()
                reg.promote(index["index_id"], cfg.alias, policy=policy, expect=self.report.production_before,
                            reason=f"pipeline: guard report {guards['report_id']} passed", gold_digest=gold_hash,
                            general_digests=general_hashes)
                self.report.stages.append(StageResult("promote", index["index_id"], False, time.perf_counter() - t,
                                                      {"alias": cfg.alias, "index_id": index["index_id"]}))
            self.report.promoted = True
            self.on_stage("promote", f"{cfg.alias} -> {index['index_id']}")
        else:
            self.on_stage("promote", f"not promoted: verdict {guards['verdict']}; {cfg.alias} untouched")
        return self.report


def _exists_model(reg: Registry, ref: str) -> bool:
    try:
        reg.models.get(ref)
        return True
    except Exception:
        return False


def _ready(reg: Registry, index_id: str) -> bool:
    from embedops.registry import IndexStatus

    try:
        return reg.indexes.get(index_id).status is IndexStatus.READY
    except Exception:
        return False
