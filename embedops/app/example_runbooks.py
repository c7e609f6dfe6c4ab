"""A tiny example corpus (20 runbooks, 10 questions with one relevant runbook each), written by
embedops itself for the quickstart, the docs and fast tests. ``write_runbooks(dir)`` lays it out as
a BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv)."""

from __future__ import annotations

import json
from pathlib import Path

RUNBOOKS: list[tuple[str, str, str]] = [
    ('rb-001', 'Postgres failover (PGX cluster)',
     'When the PGX primary is unreachable for 60s, promote the hot standby with `pg_ctl promote`, then repoint the pgbouncer VIP. Page #dba-oncall before touching replication slots.'),
    ('rb-002', 'Kafka consumer lag on ORDERS',
     'Lag on the ORDERS topic usually means the fulfilment consumers are stuck on a poison message. Check the DLQ, skip the offset with kcat, restart the consumer group.'),
    ('rb-003', 'TLS cert renewal (edge)',
     'Edge certificates are renewed by cert-manager 30 days before expiry. If a renewal fails, check the ACME challenge on the ingress and the DNS01 credentials in vault.'),
    ('rb-004', 'Disk pressure on k8s nodes',
     'Kubelet evicts pods when a node reports DiskPressure. Prune images with crictl, look for runaway logs in /var/log/pods, cordon the node if usage keeps growing.'),
    ('rb-005', 'Redis OOM on SESSIONS cache',
     'SESSIONS Redis hits maxmemory during login storms. Set maxmemory-policy allkeys-lru, scale the shard, and check for keys without TTL.'),
    ('rb-006', 'Rolling back a bad deploy',
     'Use `shipit rollback <service>` to return to the previous release; it flips the LB target group in under a minute. Freeze deploys in #release while you investigate.'),
    ('rb-007', 'HAWK alert: p95 latency',
     'HAWK fires when p95 latency of the search API exceeds 300ms for 10 minutes. Check the embedding service GPU utilisation and the LanceDB compaction job.'),
    ('rb-008', 'Rotating service credentials',
     'Service credentials live in vault under kv/svc. Rotate with `vault write -f` on the role, then restart pods to pick up the new lease.'),
    ('rb-009', 'S3 bucket access denied',
     'AccessDenied on the ARCHIVE bucket is usually a missing bucket policy after an account move. Compare with the terraform state and reapply.'),
    ('rb-010', 'DNS resolution failures in cluster',
     'If pods cannot resolve internal names, restart CoreDNS and check the ndots setting; upstream resolvers sometimes rate-limit bursts.'),
    ('rb-011', 'Elastic cluster yellow',
     'A yellow Elastic cluster has unassigned replicas. Check disk watermarks, then reroute shards; never delete the .security index.'),
    ('rb-012', 'Payment webhook retries (PAYGATE)',
     'PAYGATE retries webhooks for 24h with backoff. If our endpoint 5xxs, events pile up; replay them from the PAYGATE dashboard after the fix.'),
    ('rb-013', 'Nightly ETL (OWL) failed',
     'The OWL nightly ETL writes to the warehouse at 02:00 UTC. On failure, rerun the failed DAG task in Airflow; do not rerun the whole DAG, it double-counts.'),
    ('rb-014', 'CDN cache purge',
     'Purge the CDN cache for a path with `cdnctl purge /path/*`. Full purges spike origin load; get approval in #traffic first.'),
    ('rb-015', 'On-call handover',
     'Handover at 09:00 local: summarise open incidents, silenced alerts and risky deploys in the #oncall thread; the outgoing engineer owns pages until acked.'),
    ('rb-016', 'Memory leak in the API gateway',
     'Gateway pods with growing RSS after a release are usually leaking HTTP/2 streams. Roll back, capture a heap profile with pprof and file a bug.'),
    ('rb-017', 'Feature flag kill switch',
     'Every risky feature ships behind a flag in FLAGR. The kill switch turns it off for all tenants in seconds without a deploy.'),
    ('rb-018', 'GPU node drained for maintenance',
     'Before draining a GPU node, move the embedding workers with `kubectl drain --ignore-daemonsets`; the re-embed job resumes from its last committed chunk.'),
    ('rb-019', 'Backup restore drill',
     "Quarterly, restore last night's PGX backup into the staging cluster and run the checksum job; record restore time in the DR sheet."),
    ('rb-020', 'Rate limiting abusive clients',
     "Add the client's API key to the deny list in the edge WAF; for IP floods use the ratelimit rule with a 1-minute ban."),
]

QUESTIONS: list[tuple[str, str, str]] = [
    ('q1', 'primary db is down how do i promote the replica', 'rb-001'),
    ('q2', 'orders consumers are falling behind', 'rb-002'),
    ('q3', 'cert expired on the edge', 'rb-003'),
    ('q4', 'pods getting evicted node disk full', 'rb-004'),
    ('q5', 'sessions cache out of memory', 'rb-005'),
    ('q6', 'revert the release i just shipped', 'rb-006'),
    ('q7', 'hawk is paging about slow search', 'rb-007'),
    ('q8', 'owl job broke last night', 'rb-013'),
    ('q9', 'turn off a feature for everyone now', 'rb-017'),
    ('q10', 'paygate events not arriving', 'rb-012'),
]


def write_runbooks(root: Path | str) -> Path:
    """Write the example as a BEIR directory under ``root`` and return it."""
    root = Path(root)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in RUNBOOKS))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t, _ in QUESTIONS))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, _, d in QUESTIONS))
    return root


if __name__ == "__main__":  # python -m embedops.app.example_runbooks DIR
    import sys

    print(write_runbooks(sys.argv[1] if len(sys.argv) > 1 else "runbooks"))
