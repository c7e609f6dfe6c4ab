"""A guard run opens each (model, precision) once: one ONNX Runtime session, each stored artifact's
checksums verified once, however many gates use it."""

from collections import Counter
from pathlib import Path

from embedops.encoding import ENCODERS, OnnxEncoder
from embedops.guards import Policy, run_guards
from embedops.reembed import IndexBuild
from embedops.registry import ensure_export
from embedops.registry import artifacts as artifacts_module
from embedops.registry import models as models_module
from guard_helpers import RUNBOOKS


def test_a_guard_run_opens_one_session_per_model_and_verifies_each_artifact_once(
        reg, tiny_model_b, sts_file, monkeypatch):
    reg.corpora.add("runbooks", RUNBOOKS)
    base = IndexBuild(reg, "tiny@1", "runbooks").run().index
    reg.promote(base.index_id, reason="baseline", override=True)
    cand_model = reg.models.register("tiny", tiny_model_b, parent="tiny@1")
    cand = IndexBuild(reg, cand_model.ref, "runbooks").run().index
    exports = {ref: ensure_export(reg, ref)[1] for ref in ("tiny@1", cand_model.ref)}
    ENCODERS.clear()  # a fresh process, as far as the cache knows

    sessions: Counter = Counter()
    init = OnnxEncoder.__init__

    def counting_init(self, path, *args, **kwargs):
        sessions[Path(path)] += 1
        init(self, path, *args, **kwargs)

    verified: Counter = Counter()

    def counting(module):
        real = module.verify_files

        def verify_files(root, files):
            verified[Path(root)] += 1
            return real(root, files)
        return verify_files

    monkeypatch.setattr(OnnxEncoder, "__init__", counting_init)
    monkeypatch.setattr(artifacts_module, "verify_files", counting(artifacts_module))
    monkeypatch.setattr(models_module, "verify_files", counting(models_module))

    report = run_guards(reg, cand.index_id, gold=RUNBOOKS, general=[sts_file],
                        policy=Policy(min_lift=-100, tolerance=100, max_drop=100, bootstrap_resamples=200))

    assert {g.name for g in report.gates} >= {"domain", "forgetting", "onnx_parity", "index_integrity"}
    # the candidate's and production's (= the lineage base's) fp32 exports: one session each
    assert sessions == Counter({exports["tiny@1"]: 1, exports[cand_model.ref]: 1}), sessions
    assert verified and all(n == 1 for n in verified.values()), verified
    assert exports["tiny@1"] in verified and exports[cand_model.ref] in verified
    assert reg.models.artifact_path(cand_model) in verified  # the parity gate's torch weights
