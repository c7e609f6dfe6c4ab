"""The promotion policy is read strictly: every value type- and range-checked, every unknown key or
section an error naming the file, line and section.key (exit code 2 on the command line)."""

import pytest

from helpers import StoreCli
from embedops.errors import InputError, UsageError
from embedops.registry import Policy, load_policy

BAD = {
    "confidence = 7.0": ("guards.confidence", "must be < 1 (got 7.0)"),
    "bootstrap_resamples = 0": ("guards.bootstrap_resamples", "must be >= 100"),
    "k = true": ("guards.k", "must be an integer"),
    "max_drop = -1": ("guards.max_drop", "must be >= 0"),
    "metric = 'map@5'": ("guards.metric", "use ndcg@10, mrr@10 or recall@K"),
    "required_gates = ['domian']": ("guards.required_gates", "unknown gate 'domian'"),
    "min_lfit = 0.5": ("guards.min_lfit", "unknown setting"),
    "domain_floor = 250": ("guards.domain_floor", "must be <= 100"),
    "fine_tunes_must_lift = 1": ("guards.fine_tunes_must_lift", "must be true or false"),
}


@pytest.mark.parametrize("line", sorted(BAD))
def test_bad_policy_values_name_file_line_and_key(tmp_path, line):
    path = tmp_path / "embedops.toml"
    path.write_text(f"# team policy\n[guards]\nmin_lift = 0.5\n{line}\n")
    key, message = BAD[line]
    with pytest.raises(InputError) as exc:
        load_policy(path)
    assert f"{path}:4: field '{key}': " in str(exc.value) and message in str(exc.value)


def test_unknown_section_and_missing_file_are_refused(tmp_path):
    path = tmp_path / "embedops.toml"
    path.write_text("[guards]\nmin_lift = 0.5\n\n[gaurds]\nmax_drop = 2\n")
    with pytest.raises(InputError, match=r"embedops.toml:4: field 'gaurds': unknown section; known: guards"):
        load_policy(path)
    with pytest.raises(InputError, match="no such policy file"):
        load_policy(tmp_path / "absent.toml")


def test_good_policy_file_overrides_defaults_and_changes_the_hash(tmp_path):
    path = tmp_path / "embedops.toml"
    path.write_text("[guards]\nmin_lift = 0.5\nmax_drop = 2\nrequired_gates = ['domain', 'onnx_parity']\n"
                    "domain_floor = 40.0\n")
    policy = load_policy(path)
    assert (policy.min_lift, policy.max_drop, policy.tolerance, policy.domain_floor) == (0.5, 2, 1.0, 40.0)
    assert policy.required_gates == ("domain", "onnx_parity") and policy.hash != Policy().hash
    assert Policy().required_gates == ("domain", "slices", "forgetting", "onnx_parity", "index_integrity")
    with pytest.raises(UsageError, match="'confidence' must be < 1"):
        Policy(confidence=7.0)


def test_commands_exit_2_on_a_bad_policy_naming_file_section_and_key(tmp_path):
    cli = StoreCli(str(tmp_path / "store"))
    bad = tmp_path / "policy.toml"
    bad.write_text("[guards]\nbootstrap_resamples = 0\n")
    for args in (("guard", "any-index", "--gold", tmp_path, "--policy", bad), ("promote", "any-index", "--policy", bad)):
        result = cli(*args, expect=2)
        assert f"{bad}:2: field 'guards.bootstrap_resamples'" in " ".join(result.stderr.split()).replace("\n", "")
