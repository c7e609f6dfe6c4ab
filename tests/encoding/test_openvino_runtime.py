"""OpenVINO's runtime is used without its usage telemetry: nothing is written or sent on import."""

import os
import subprocess
import sys


def test_importing_openvino_through_embedops_starts_no_telemetry(tmp_path):
    code = ("import sys, multiprocessing\n"
            "from embedops.encoding import openvino_runtime\n"
            "assert openvino_runtime.available()\n"
            "assert sys.modules.get('openvino_telemetry') is None, 'telemetry module loaded'\n"
            "assert not multiprocessing.active_children(), 'a process was forked'\n")
    env = os.environ | {"HOME": str(tmp_path)}  # where OpenVINO's telemetry keeps its client id and counts
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "intel").exists(), "OpenVINO's telemetry wrote its client id"
