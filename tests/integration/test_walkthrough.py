"""The main job: examples/walkthrough.py end to end against a real berthd with
its real node agent, then a check that nothing of it is left behind."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from test_agent import assert_no_leaks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the node agent needs root")


def test_walkthrough_end_to_end(berthd_factory):
    b = berthd_factory("walkthrough", agent=True)
    env = b.cli_env()
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "walkthrough.py"),
                        "--endpoint-url", b.endpoint],
                       env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr + "\n" + b.log_tail(80)
    # What the user sees at each step: real answers, not canned ones.
    assert "repositoryUri: localhost:" in out
    assert "no task-level cpu/memory -> ClientException: Fargate requires that 'cpu' be " \
           "defined at the task level." in out
    assert "create_service(loadBalancer=...) -> boto3 ParamValidationError" in out
    assert ("no networkConfiguration -> InvalidParameterException: Network Configuration must "
            "be provided when networkMode 'awsvpc' is specified.") in out
    assert "hello from berth task " in out and "hello from berth task unknown" not in out
    assert "every running task answered through the load balancer (2)" in out
    assert "every running task answered through the load balancer (3)" in out
    assert "sample-app: serving task" in out
    assert "Walkthrough finished" in out
    # After the clean-up nothing is left: no clusters, repositories or tasks.
    assert b.client("ecs").list_clusters()["clusterArns"] == []
    assert b.client("ecr").describe_repositories()["repositories"] == []
    b.stop()
    assert_no_leaks(b)
