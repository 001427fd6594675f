"""Fixtures shared by the twin's fidelity tests and the real-Packer end-to-end tests.

The twin is started once per test session on a free loopback port and reset before each test,
so every test starts from an empty account.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "twin"))

import scenario  # noqa: E402

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def twin_endpoint() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "twin" / "twin.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("AMIGUARD_TWIN_ENDPOINT="):
        proc.kill()
        pytest.fail(f"the twin did not start: {line!r}")
    try:
        yield line.split("=", 1)[1]
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0, "the twin did not stop cleanly"


@pytest.fixture
def twin(twin_endpoint: str) -> str:
    """The endpoint of a twin with an empty account (moto's reset API)."""
    req = urllib.request.Request(f"{twin_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    return twin_endpoint


def ec2(endpoint: str, region: str) -> Any:
    return scenario.client("ec2", endpoint, region)


def kms(endpoint: str, region: str) -> Any:
    return scenario.client("kms", endpoint, region)


def snapshots_of(endpoint: str, region: str, ami_id: str) -> list[dict[str, Any]]:
    """The snapshots behind every EBS mapping of an AMI, as DescribeSnapshots reports them."""
    c = ec2(endpoint, region)
    image = c.describe_images(ImageIds=[ami_id])["Images"][0]
    ids = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    assert ids, f"{ami_id} has no EBS snapshot"
    return c.describe_snapshots(SnapshotIds=ids)["Snapshots"]


def packer_bin() -> str:
    found = shutil.which("packer")
    if not found:
        pytest.fail("Debian's packer (1.6.6) is not installed: run .ci/run or apt-get install packer")
    return found


def run_packer(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, CHECKPOINT_DISABLE="1", PACKER_NO_COLOR="1")
    return subprocess.run([packer_bin(), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def built_amis(stdout: str) -> dict[str, str]:
    """`region: ami-id` lines after Packer's `AMIs were created:` (facts §5, output)."""
    out: dict[str, str] = {}
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith("AMIs were created:"):
            for l2 in lines[i + 1:]:
                l2 = l2.strip()
                if ":" not in l2 or not l2.split(":", 1)[1].strip().startswith("ami-"):
                    break
                region, ami = (s.strip() for s in l2.split(":", 1))
                out[region] = ami
    return out


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path
