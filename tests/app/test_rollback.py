"""The [serve.rollback] policy: read strictly from embedops.toml, and the judgement it makes."""

import pytest

from embedops.app.server.rollback import RollbackPolicy, judge, load_rollback_policy
from embedops.errors import InputError, UsageError
from embedops.registry import load_policy


def test_policy_file_is_read_strictly_with_file_line_and_key(tmp_path):
    path = tmp_path / "embedops.toml"
    path.write_text("[guards]\nmin_lift = 0.5\n\n[serve.rollback]\nmax_error_rate = 0.02\nmin_agreement = 0.4\n")
    policy = load_rollback_policy(path)
    assert policy.max_error_rate == 0.02 and policy.min_agreement == 0.4 and policy.window == 60
    assert load_policy(path).min_lift == 0.5  # the guards still read their own section of the same file
    path.write_text("[serve.rollback]\nmax_eror_rate = 0.02\n")
    with pytest.raises(InputError, match=r"embedops.toml:2: field 'serve.rollback.max_eror_rate': unknown setting"):
        load_rollback_policy(path)
    path.write_text("[serve.rollback]\nwindow = 60\nmin_agreement = 1.5\n")
    with pytest.raises(InputError, match=r":3: field 'serve.rollback.min_agreement': must be <= 1 \(got 1.5\)"):
        load_rollback_policy(path)
    path.write_text("[serve.rollback]\nenabled = 'yes'\n")
    with pytest.raises(InputError, match="must be true or false"):
        load_rollback_policy(path)
    path.write_text("[serve]\nport = 8000\n")
    with pytest.raises(InputError, match="'serve.port': unknown setting"):
        load_rollback_policy(path)
    with pytest.raises(InputError, match="no such policy file"):
        load_rollback_policy(tmp_path / "missing.toml")
    with pytest.raises(UsageError, match="min_requests"):
        RollbackPolicy(min_requests=0)


def test_no_decision_below_min_requests_and_the_first_crossed_limit_is_named():
    policy = RollbackPolicy(max_error_rate=0.1, max_p95_ratio=2.0, min_agreement=0.5, min_requests=10)
    few_bad = [(5.0, False)] * 9
    assert judge(policy, "canary", requests=few_bad, comparisons=[], window=60) is None
    errors = judge(policy, "canary", requests=[(5.0, False)] * 3 + [(5.0, True)] * 9, comparisons=[], window=60)
    assert errors.signal == "error_rate" and errors.value == pytest.approx(0.25)
    assert "canary error rate 25.0% > max_error_rate 10.0% (3 of 12 requests, last 60 s)" in errors.reason
    ok_requests = [(5.0, True)] * 20
    slow = judge(policy, "production", requests=ok_requests, comparisons=[(1.0, 30.0, 10.0)] * 10, window=60)
    assert slow.signal == "p95_ratio" and slow.value == pytest.approx(3.0) and "production p95 latency" in slow.reason
    assert judge(policy, "production", requests=ok_requests, comparisons=[(1.0, 15.0, 10.0)] * 10, window=60) is None
    apart = judge(policy, "canary", requests=ok_requests, comparisons=[(0.2, 10.0, 10.0)] * 10, window=30)
    assert apart.signal == "agreement" and apart.value == pytest.approx(0.2) and "last 30 s" in apart.reason
    assert judge(RollbackPolicy(min_agreement=0.0, min_requests=10), "canary", requests=ok_requests,
                 comparisons=[(0.0, 10.0, 10.0)] * 10, window=60) is None  # agreement off by default
