"""Index-build throughput of the Ray engine (1 vs 2 encoder actors) beside the local engine, on SciFact
(5,183 abstracts), fp32, all in one run on one machine. Each actor runs ONNX Runtime on one thread;
the local engine uses ONNX Runtime's default (all cores)."""

from conftest import record
from embedops.registry import Registry
from embedops.reembed.build import IndexBuild
from embedops.reembed.ray_engine import RayEngine, shutdown
from embedops.store import Store


def test_ray_engine_docs_per_second(benchmark, scifact, tmp_path):
    import ray

    reg = Registry(Store.open(str(tmp_path / "store")))
    reg.corpora.add("scifact", scifact)
    reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    results = {}
    local = IndexBuild(reg, "minilm@1", "scifact").run()
    results["local_docs_per_s"] = local.docs_per_second
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)  # 2 actors + the read tasks
    try:
        for workers in (1, 2):
            holder = {}
            run = lambda: holder.setdefault("r", IndexBuild(reg, "minilm@1", "scifact",  # noqa: E731
                                                             engine=RayEngine(workers=workers)).run())
            if workers == 2:
                benchmark.pedantic(run, rounds=1, iterations=1)
            else:
                run()
            report = holder["r"]
            assert report.index.doc_count == 5183
            results[f"ray_{workers}_worker_docs_per_s"] = report.docs_per_second
    finally:
        shutdown()
    results["ray_2_vs_1_worker_speedup"] = results["ray_2_worker_docs_per_s"] / results["ray_1_worker_docs_per_s"]
    results["ray_2_workers_vs_local"] = results["ray_2_worker_docs_per_s"] / results["local_docs_per_s"]
    benchmark.extra_info.update(results)
    record("ray_engine_scifact_cpu", results)
