"""The demo domain, produced by embedops itself (not real data): an engineering organisation's
runbooks and incident notes, written the way such notes are — internal codenames and abbreviations
everywhere, the plain meaning of a codename written down nowhere. Staff ask in plain language
("the main database keeps running out of memory"); the notes say "PGX: OOMKilled on pri". This is
the case an off-the-shelf model handles worst, and what fine-tuning on the organisation's own
questions fixes.

:func:`write_demo_domain` writes a BEIR directory: ``corpus.jsonl``, ``queries.jsonl`` (held-out
questions), ``qrels/test.tsv``, plus ``train-pairs.jsonl`` (questions for training, phrased with
other templates and covering only some of each system's problems, so the held-out set also tests
problems never seen with that system in training) and ``general-sts.tsv`` (see below).

The general check bundled with the demo is 24 hand-written sentence pairs with similarity scores:
a smoke test that the model has not forgotten everyday English, *not* a benchmark. For a real
general check pass STS-B or a BEIR set with ``--general``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

# codename, plain names staff use (training uses the first two, held-out questions the last)
SYSTEMS: list[tuple[str, list[str]]] = [
    ("PGX", ["main database", "primary postgres cluster", "postgres database"]),
    ("HAWK", ["alerting system", "alert manager", "monitoring alerts"]),
    ("OWL", ["nightly warehouse ETL", "overnight data load", "data warehouse import job"]),
    ("KITE", ["search API", "product search service", "search endpoint"]),
    ("MOLE", ["message queue", "event bus", "kafka cluster"]),
    ("BRN", ["GPU embedding workers", "embedding servers", "vector encoding GPUs"]),
    ("FLAGR", ["feature flag service", "feature toggles", "flag system"]),
    ("PAYGATE", ["payment webhooks", "card payment callbacks", "payments provider integration"]),
    ("KEYSTONE", ["secrets store", "password vault", "credentials manager"]),
    ("DRIFT", ["CDN edge cache", "content delivery network", "edge caching layer"]),
    ("LOOM", ["deploy tool", "release pipeline", "deployment system"]),
    ("TIDE", ["log pipeline", "log shipping", "logging stack"]),
    ("ATLAS", ["kubernetes cluster", "container platform", "k8s nodes"]),
    ("QUILL", ["email sending service", "transactional email", "outgoing mail"]),
    ("MINT", ["billing service", "invoicing system", "subscription billing"]),
    ("ORBIT", ["login service", "single sign-on", "authentication service"]),
    ("NEST", ["backup storage", "nightly backups", "snapshot archive"]),
    ("PRISM", ["metrics dashboards", "grafana boards", "monitoring charts"]),
]

# problem key, what the notes say (jargon), how staff describe it after the system's name
# (training uses the first two phrasings, held-out questions the last)
PROBLEMS: list[tuple[str, str, list[str]]] = [
    ("oom", "OOMKilled on pri, RSS climbs after each deploy; bump limits, capture heap prof, rb if leak",
     ["keeps running out of memory", "crashes with memory errors", "is eating all the RAM"]),
    ("latency", "p95 over SLO for 10m; check sat on upstream, conn pool exhaustion, compaction backlog",
     ["is really slow", "takes forever to respond", "feels sluggish today"]),
    ("disk", "vol at 95pct, DiskPressure; prune, rotate, extend PV, cordon if growth continues",
     ["has a full disk", "says no space left on device", "is filling up its storage"]),
    ("cert", "x509 exp in <7d or expired; renew via ACME, check DNS01 creds, reload listeners",
     ["has an expired certificate", "throws https certificate errors", "needs its tls cert renewed"]),
    ("creds", "rotate creds: new lease from kv, roll pods, revoke old lease after 1h",
     ["password needs changing", "credentials must be rotated", "secret leaked and needs replacing"]),
    ("backlog", "lag > 10k, consumers stuck on poison msg; skip offset, DLQ, scale consumers",
     ["is falling behind", "has work piling up", "has a huge backlog"]),
    ("deploy", "bad rel: LOOM rb to N-1, freeze in #release, diff cfg, re-roll after fix",
     ["broke after the last release", "needs a rollback of the broken deploy", "got worse after yesterday's change"]),
    ("down", "hard down, 5xx 100pct; failover to sby, repoint VIP, page owner, open INC",
     ["is completely down", "returns errors for everyone", "is having a total outage"]),
]

TRAIN_TEMPLATES = ["{system} {problem}", "how do I fix it when the {system} {problem}", "the {system} {problem}, what do I do"]
HELD_OUT_TEMPLATES = ["our {system} {problem}, help", "what's the procedure when the {system} {problem}?"]

# 24 hand-written pairs with 0-5 similarity: a smoke test of everyday English, not a benchmark.
GENERAL_STS = [
    (5.0, "A man is playing a guitar.", "A man plays the guitar."),
    (4.6, "A woman is slicing an onion.", "A woman cuts an onion."),
    (0.2, "A man is playing a guitar.", "The stock market fell sharply today."),
    (3.8, "Two dogs run across a field.", "Two dogs are running on the grass."),
    (0.0, "A cat sleeps on the sofa.", "The government passed a new tax law."),
    (2.5, "A child is riding a bike.", "A child is walking with a bike."),
    (4.2, "The train arrived late.", "The train was delayed."),
    (1.0, "She is cooking pasta.", "She is reading a book."),
    (3.2, "A plane is taking off.", "An airplane departs from the runway."),
    (0.4, "The baby is crying.", "Engineers repaired the bridge."),
    (4.8, "The sun is shining.", "It is sunny."),
    (1.6, "A boy kicks a ball.", "A boy throws a ball to a dog."),
    (4.4, "The meeting was postponed until Friday.", "The meeting has been moved to Friday."),
    (0.6, "He bought fresh bread.", "The satellite entered orbit."),
    (3.6, "Prices rose again this month.", "Inflation went up this month."),
    (2.0, "The river flooded the village.", "The village is near a river."),
    (4.9, "The store opens at nine.", "The shop opens at 9 am."),
    (0.0, "Penguins live in cold climates.", "My laptop battery is dead."),
    (3.0, "A musician tunes a violin.", "Someone is preparing a string instrument."),
    (1.2, "The chef tastes the soup.", "The waiter carries plates."),
    (4.0, "Students are taking an exam.", "Pupils are sitting a test."),
    (2.8, "A woman is jogging in the park.", "A woman walks through a park."),
    (0.3, "The painting was sold at auction.", "The football match ended in a draw."),
    (4.5, "The car would not start this morning.", "This morning the car failed to start."),
]


@dataclass(frozen=True)
class DemoDomain:
    root: Path
    documents: int
    held_out_queries: int
    train_pairs: int

    @property
    def general(self) -> Path:
        return self.root / "general-sts.tsv"

    @property
    def pairs(self) -> Path:
        return self.root / "train-pairs.jsonl"


def write_general_sts(path: Path) -> Path:
    """The 24 hand-written general pairs as an STS TSV (a smoke test of everyday English)."""
    path.write_text("score\tsentence1\tsentence2\n" + "".join(f"{s}\t{a}\t{b}\n" for s, a, b in GENERAL_STS))
    return path


def write_demo_domain(root: Path | str, seed: int = 0) -> DemoDomain:
    """Write the demo domain as a BEIR directory under ``root`` (deterministic for a seed)."""
    rng = random.Random(seed)
    root = Path(root)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    docs, queries, qrels, pairs = [], [], [], []
    for s_idx, (code, names) in enumerate(SYSTEMS):
        problems = list(PROBLEMS)
        rng.shuffle(problems)
        trained = {p[0] for p in problems[:5]}  # 3 of 8 problems per system never appear in training
        for key, jargon, phrasings in problems:
            doc_id = f"{code.lower()}-{key}"
            kind = rng.choice(["Runbook", "Incident note", "On-call note"])
            inc = f"INC-{rng.randint(1000, 9999)}"
            text = (f"{code}: {jargon}. Seen in {inc}; owner #{code.lower()}-oncall. "
                    f"If {code} pri flaps again escalate to SRE-L2.")
            docs.append({"_id": doc_id, "title": f"{kind}: {code} {key}", "text": text})
            for t_idx, tmpl in enumerate(HELD_OUT_TEMPLATES):
                qid = f"q-{doc_id}-{t_idx}"
                queries.append({"_id": qid, "text": tmpl.format(system=names[-1], problem=phrasings[-1])})
                qrels.append((qid, doc_id))
            if key in trained:
                for name in names[:2]:
                    for phrasing in phrasings[:2]:
                        tmpl = rng.choice(TRAIN_TEMPLATES)
                        q = tmpl.format(system=name, problem=phrasing)
                        pairs.append({"query": q, "doc_id": doc_id, "source": "demo-staff-questions"})
    with open(root / "corpus.jsonl", "w") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    with open(root / "queries.jsonl", "w") as fh:
        fh.writelines(json.dumps(q) + "\n" for q in queries)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels))
    with open(root / "train-pairs.jsonl", "w") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in pairs)
    write_general_sts(root / "general-sts.tsv")
    (root / "SOURCE.md").write_text(
        "Produced by embedops.demo_domain (synthetic, seeded): runbooks and incident notes of a fictional "
        "engineering organisation with internal codenames; held-out staff questions in queries.jsonl/qrels; "
        "training questions in train-pairs.jsonl; general-sts.tsv is a 24-pair smoke test, not a benchmark.\n")
    return DemoDomain(root, len(docs), len(queries), len(pairs))
