#!/usr/bin/env python3
"""make bench: amiguard against its baselines, in one run on the local twin, as ratios.

1. `plan` against a shell script doing the same preflight with the AWS CLI (the seed's commands:
   get-ebs-encryption-by-default, get-ebs-default-kms-key-id, describe-key per Region, then
   describe-images and describe-snapshots for the source), for a 1-Region and a 4-Region
   template. Aims: >= 30x faster than the script; 4 Regions no slower than 1.3x one.
2. `amiguard version` against `packer version`: the pass-through overhead. Aim: <= 1.05x.
3. `verify` of 200 AMIs across 2 Regions against the AWS CLI doing the same with batched calls
   (one describe-images and one describe-snapshots per Region).

The twin answers in microseconds from one Python process, so with no latency a plan measures
the twin's own CPU, which grows with the number of calls. Real Regions are remote endpoints:
the plan benchmarks are therefore run twice, without latency and with an emulated 20 ms round
trip on every request (twin --latency), which is what "4 Regions cost one Region's round trips"
is about.

Wall times are medians of repeated runs; peak memory is the child's max RSS (wait4). These
machines are shared and noisy: compare ratios within one run, not absolute times across runs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "twin"))

from scenario import client, setup  # noqa: E402

AMIGUARD = REPO / "target" / "release" / "amiguard"
REGIONS = ["ap-northeast-1", "us-east-1", "eu-west-1", "us-west-2"]


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run; fails loudly if the command fails."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd[:4])}…\n{err}")
    return elapsed, usage.ru_maxrss


def median(cmd: list[str], env: dict[str, str], cwd: Path, n: int) -> tuple[float, int]:
    run(cmd, env, cwd)  # warm-up: page cache, Python imports in the twin
    samples = [run(cmd, env, cwd) for _ in range(n)]
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def main() -> int:
    if not AMIGUARD.exists():
        raise SystemExit("build the release binary first: cargo build --release")
    results: list[tuple[str, float, str]] = []
    for latency in (0.0, 0.02):
        bench(latency, results)
    width = max(len(r[0]) for r in results)
    print(f"\n{'benchmark'.ljust(width)}  ratio   detail")
    for name, ratio, detail in results:
        print(f"{name.ljust(width)}  {ratio:6.2f}x  {detail}")
    return 0


def bench(latency: float, results: list[tuple[str, float, str]]) -> None:
    """One round of every benchmark against a twin with this emulated round trip."""
    work = Path(tempfile.mkdtemp(prefix="amiguard-bench-"))
    twin = subprocess.Popen([sys.executable, str(REPO / "tests/twin/twin.py"),
                             "--latency", str(latency)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    tag = f"[rtt {latency * 1000:.0f} ms]"
    try:
        assert twin.stdout is not None
        endpoint = twin.stdout.readline().strip().split("=", 1)[1]
        env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_ENDPOINT_URL=endpoint, AWS_REGION=REGIONS[0], CHECKPOINT_DISABLE="1")
        env.pop("AWS_PROFILE", None)
        facts = setup(endpoint, REGIONS, ebd="on")
        ami = facts["source_ami"]

        # 1. plan vs the AWS CLI preflight.
        def template(name: str, regions: list[str]) -> Path:
            b = {"type": "amazon-ebs", "region": REGIONS[0], "source_ami": ami,
                 "instance_type": "t3.micro", "ami_name": "bench-{{timestamp}}",
                 "communicator": "none", "custom_endpoint_ec2": endpoint,
                 "skip_region_validation": True, "ami_users": ["210987654321"]}
            if regions[1:]:
                b["ami_regions"] = regions[1:]
            p = work / name
            p.write_text(json.dumps({"builders": [b]}))
            return p

        def cli_script(regions: list[str]) -> Path:
            lines = ["#!/usr/bin/env bash", "set -euo pipefail"]
            for r in regions:
                lines += [f"aws ec2 get-ebs-encryption-by-default --region {r} --output text",
                          f"aws ec2 get-ebs-default-kms-key-id --region {r} --output text",
                          f"aws kms describe-key --key-id alias/amiguard-test --region {r} --output text"]
            lines += [
                f"snap=$(aws ec2 describe-images --region {REGIONS[0]} --image-ids {ami} "
                "--query 'Images[0].BlockDeviceMappings[0].Ebs.SnapshotId' --output text)",
                f"aws ec2 describe-snapshots --region {REGIONS[0]} --snapshot-ids \"$snap\" --output text",
            ]
            p = work / f"preflight-{len(regions)}.sh"
            p.write_text("\n".join(lines) + "\n")
            p.chmod(0o755)
            return p

        plan_times = {}
        for n_regions in (1, 4):
            regions = REGIONS[:n_regions]
            t = template(f"t{n_regions}.json", regions)
            ours, rss = median([str(AMIGUARD), "plan", "--format", "json", "--intent", "cmk",
                                "--kms-key", "alias/amiguard-test", str(t)], env, work, 15)
            theirs, _ = median([str(cli_script(regions))], env, work, 3)
            plan_times[n_regions] = ours
            results.append((f"{tag} plan, {n_regions} Region(s): AWS CLI script / amiguard",
                            theirs / ours,
                            f"amiguard {ours * 1000:.0f} ms (peak RSS {rss // 1024} MiB), "
                            f"script {theirs * 1000:.0f} ms; aim >= 30x"))
        results.append((f"{tag} plan: 4 Regions / 1 Region", plan_times[4] / plan_times[1],
                        "aim <= 1.3x: Regions are read concurrently"))
        if latency:
            return

        # 2. Pass-through overhead.
        packer = shutil.which("packer")
        if packer is None:
            raise SystemExit("packer is not installed")
        ours, _ = median([str(AMIGUARD), "version"], env, work, 30)
        theirs, _ = median([packer, "version"], env, work, 30)
        results.append((f"{tag} `amiguard version` / `packer version`", ours / theirs,
                        f"{ours * 1000:.1f} ms vs {theirs * 1000:.1f} ms; aim <= 1.05x"))

        # 3. verify of 200 AMIs across 2 Regions.
        amis: dict[str, list[str]] = {}
        for r in REGIONS[:2]:
            ec2 = client("ec2", endpoint, r)
            vol = ec2.create_volume(AvailabilityZone=f"{r}a", Size=1)["VolumeId"]
            amis[r] = []
            for i in range(100):
                snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
                amis[r].append(ec2.register_image(
                    Name=f"bench-{i}", RootDeviceName="/dev/xvda",
                    BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                          "Ebs": {"SnapshotId": snap}}])["ImageId"])
        manifest = work / "manifest.json"
        manifest.write_text(json.dumps({"builds": [{
            "name": "bench", "builder_type": "amazon-ebs",
            "artifact_id": ",".join(f"{r}:{a}" for r, ids in amis.items() for a in ids)}]}))
        script = work / "verify.sh"
        lines = ["#!/usr/bin/env bash", "set -euo pipefail"]
        for r, ids in amis.items():
            lines += [f"snaps=$(aws ec2 describe-images --region {r} --image-ids {' '.join(ids)} "
                      "--query 'Images[].BlockDeviceMappings[].Ebs.SnapshotId' --output text)",
                      f"aws ec2 describe-snapshots --region {r} --snapshot-ids $snaps "
                      "--query 'Snapshots[].[SnapshotId,Encrypted,KmsKeyId]' --output text"]
        script.write_text("\n".join(lines) + "\n")
        script.chmod(0o755)
        ours, rss = median([str(AMIGUARD), "verify", "--intent", "any", "--format", "json",
                            "--manifest", str(manifest)], env, work, 7)
        theirs, _ = median([str(script)], env, work, 3)
        results.append((f"{tag} verify 200 AMIs in 2 Regions: AWS CLI / amiguard", theirs / ours,
                        f"amiguard {ours * 1000:.0f} ms (peak RSS {rss // 1024} MiB), "
                        f"AWS CLI {theirs * 1000:.0f} ms"))
    finally:
        twin.terminate()
        twin.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
