"""The pipeline's config file, read into one typed dataclass per section.

Every section and key is checked before anything runs: an unknown section or key, a value of the
wrong type or out of range is an InputError naming the file, line and ``section.key`` (exit 2).
Paths are relative to the config file. See examples/pipeline-scifact.toml for every field.

>>> cfg = PipelineConfig.from_toml("examples/pipeline-scifact.toml")   # doctest: +SKIP
>>> cfg.train.interpolate, cfg.guards.policy.min_lift                   # doctest: +SKIP
('auto', 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from embedops.app.generators import GeneratorSpec
from embedops.app.pairs import MineSettings
from embedops.config import TomlFile, check_field_types
from embedops.errors import InputError, InputProblem, UsageError
from embedops.index import IndexSettings
from embedops.index.settings import IndexSettingError
from embedops.registry import Policy, load_policy
from embedops.trainer.train import TrainConfig

BUNDLED_BASE = "bundled:all-MiniLM-L6-v2"
SECTIONS = ("corpus", "base", "pairs", "mine", "train", "index", "guards", "promote")


@dataclass(frozen=True)
class CorpusSection:
    name: str
    path: Path


@dataclass(frozen=True)
class BaseSection:
    model: str = BUNDLED_BASE  # a model directory, bundled:..., or a registered NAME@N
    name: str = "minilm"  # the name fine-tuned versions are registered under


@dataclass(frozen=True)
class LabelledPairs:
    beir: str | None = None  # a BEIR directory: one pair per relevant (query, document) of qrels/<split>.tsv
    split: str = "train"
    file: str | None = None  # or a pairs JSONL ({query, doc_id} or {query, text})

    @property
    def source(self) -> Path:
        """The file whose bytes these pairs come from (its checksum keys the pairs stage)."""
        return Path(self.file) if self.file else Path(self.beir or ".") / "qrels" / f"{self.split}.tsv"


def guard_rails(train: TrainConfig, general_eval: str | None, general: list[Path], *,
                explicit: set[str]) -> tuple[TrainConfig, str | None]:
    """The trainer's general rails taken from the forgetting gate's sets (``[guards] general``) where
    ``[train]`` names none (``explicit``: the keys it set): its first BEIR directory becomes
    ``general_retrieval`` and its first STS file ``general_eval``, so alpha is chosen keeping the
    very sets the gate then judges within ``max_general_drop``, rather than the bundled ones, which
    a one-point retrieval loss can slip past (embedops/data/README.md)."""
    from dataclasses import replace

    from embedops.data import general_path

    if "general_retrieval" not in explicit:
        beir = [g for g in general if general_path(g).is_dir()]
        if beir:
            train = replace(train, general_retrieval=str(beir[0]))
    if general_eval is None:
        sts = [g for g in general if general_path(g).is_file()]
        general_eval = str(sts[0]) if sts else None
    return train, general_eval


@dataclass(frozen=True)
class GuardsSection:
    gold: Path
    general: list[Path] = field(default_factory=list)
    policy: Policy = field(default_factory=Policy)  # built-in defaults < [guards] policy file < inline thresholds


@dataclass(frozen=True)
class PromoteSection:
    alias: str = "production"
    auto: bool = True


@dataclass
class PipelineConfig:
    """Settings of a pipeline run, one typed section each."""

    corpus: CorpusSection
    guards: GuardsSection
    base: BaseSection = field(default_factory=BaseSection)
    labelled: LabelledPairs | None = None
    generated: GeneratorSpec | None = None
    mine: MineSettings = field(default_factory=MineSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    general_eval: Path | None = None  # [train] general_eval: an STS TSV watched while training (default: the bundled set)
    general_pairs: Path | None = None  # [train] general_pairs: general pairs JSONL for replay (replay_fraction)
    promote: PromoteSection = field(default_factory=PromoteSection)
    index: IndexSettings = field(default_factory=IndexSettings)  # [index]: how both indexes keep and search vectors
    source: str = "<config>"

    @property
    def policy(self) -> Policy:
        return self.guards.policy

    @property
    def alias(self) -> str:
        return self.promote.alias

    @classmethod
    def from_toml(cls, path: Path | str) -> PipelineConfig:
        path = Path(path)
        if not path.is_file():
            raise InputError(InputProblem(str(path), None, None, "no such config file"))
        return cls.from_file(TomlFile.read(path), base_dir=path.parent)

    @classmethod
    def from_dict(cls, data: dict, base_dir: Path = Path("."), source: str = "<config>") -> PipelineConfig:
        return cls.from_file(TomlFile(source, "", data), base_dir=base_dir)

    @classmethod
    def from_file(cls, toml: TomlFile, base_dir: Path = Path(".")) -> PipelineConfig:
        """Read and check every section and key; nothing is run on a bad config."""
        return _Reader(toml, base_dir).config()


def _annotations(cls) -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(cls)} if cls is not None else {}


class _Reader:
    """Reads one TOML file into a PipelineConfig, section by section."""

    def __init__(self, toml: TomlFile, base_dir: Path):
        self.toml = toml
        self.base_dir = base_dir

    def rel(self, p: str) -> str:
        return p if str(p).startswith(("bundled:", "/")) else str(self.base_dir / p)

    def section(self, name: str, cls, values: dict[str, Any] | None = None, *, paths: tuple[str, ...] = (),
                extra: dict[str, str] | None = None) -> dict[str, Any]:
        """``[name]`` checked against ``cls``'s fields (and ``extra`` keys): known keys, types; paths resolved."""
        values = dict(self.toml.section(name) if values is None else values)
        annotations = _annotations(cls) | (extra or {})
        self.toml.check_keys(name, values, annotations)
        check_field_types(self.toml, name, values, annotations)
        return {k: self.rel(v) if k in paths else v for k, v in values.items()}

    def build(self, name: str, cls, values: dict[str, Any]):
        try:
            return cls(**values)
        except IndexSettingError as exc:  # names its key: reported at that key's line
            raise self.toml.error(name, exc.key, exc.reason) from None
        except (UsageError, TypeError) as exc:
            raise self.toml.error(name, None, str(exc)) from None

    def need(self, section: str, key: str):
        value = self.toml.section(section).get(key)
        if value is None:
            raise self.toml.error(section, key, "required")
        return value

    def config(self) -> PipelineConfig:
        toml = self.toml
        toml.check_sections(list(SECTIONS))
        self.section("corpus", CorpusSection)
        base = self.section("base", BaseSection)
        pairs = self.section("pairs", None, extra={"labelled": "dict", "generated": "dict"})
        labelled = generated = None
        if "labelled" in pairs:
            labelled = self.build("pairs.labelled", LabelledPairs,
                                  self.section("pairs.labelled", LabelledPairs, pairs["labelled"], paths=("beir", "file")))
        if "generated" in pairs:
            gen = self.section("pairs.generated", GeneratorSpec, pairs["generated"],
                               paths=("few_shot", "model_dir", "prompt"))
            if gen.get("generator", "extractive") not in ("extractive", "openai", "local"):
                raise toml.error("pairs.generated", "generator", "use extractive, openai or local")
            generated = self.build("pairs.generated", GeneratorSpec, gen)
        if not labelled and not generated:
            raise toml.error("pairs", None, "give pairs.labelled and/or pairs.generated")
        mine = self.build("mine", MineSettings, self.section("mine", MineSettings))
        train_values = self.section("train", TrainConfig,
                                    paths=("domain_dev", "general_eval", "general_retrieval", "general_pairs"),
                                    extra={"general_eval": "str", "general_pairs": "str"})
        general_eval = train_values.pop("general_eval", None)
        general_pairs = train_values.pop("general_pairs", None)
        train = self.build("train", TrainConfig, train_values)
        if train.replay_fraction != "auto" and train.replay_fraction > 0 and not general_pairs:
            raise toml.error("train", "replay_fraction", "mixes general pairs into training: name them with "
                                                         "general_pairs")
        guards = self.section("guards", None, extra={"gold": "str", "general": "list", "policy": "str"}
                              | {k: "" for k in Policy.__dataclass_fields__})
        policy = load_policy(Path(self.rel(guards["policy"]))) if "policy" in guards else Policy()
        policy = Policy.from_section(toml, "guards", toml.section("guards"), base=policy,
                                     ignore=("gold", "general", "policy"))
        promote = self.build("promote", PromoteSection, self.section("promote", PromoteSection))
        index = self.build("index", IndexSettings, self.section("index", IndexSettings))
        general = [Path(self.rel(g)) for g in guards.get("general", [])]
        train, general_eval = guard_rails(train, general_eval, general, explicit=set(train_values))
        model = base.get("model", BUNDLED_BASE)
        return PipelineConfig(
            corpus=CorpusSection(self.need("corpus", "name"), Path(self.rel(self.need("corpus", "path")))),
            base=BaseSection(model if model.startswith("bundled:") or "@" in model else self.rel(model),
                             base.get("name", "minilm")),
            labelled=labelled, generated=generated, mine=mine, train=train,
            general_eval=Path(general_eval) if general_eval else None,
            general_pairs=Path(general_pairs) if general_pairs else None,
            guards=GuardsSection(Path(self.rel(self.need("guards", "gold"))), general, policy),
            promote=promote, index=index, source=toml.path,
        )
