#!/usr/bin/env python3
"""Read the twin's state back for a test, through the AWS API.

    python3 tests/twin/inspect_twin.py --endpoint URL instances REGION...
        -> {"count": N, "live": M}: instances ever launched there, and those not terminated
    python3 tests/twin/inspect_twin.py --endpoint URL snapshots REGION AMI
        -> [{"snapshot_id", "encrypted", "kms_key_id"}] behind every EBS mapping of the AMI
"""

from __future__ import annotations

import argparse
import json
import sys

from scenario import client


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("what", choices=["instances", "snapshots"])
    p.add_argument("args", nargs="+")
    a = p.parse_args()
    if a.what == "instances":
        count = live = 0
        for region in a.args:
            for r in client("ec2", a.endpoint, region).describe_instances()["Reservations"]:
                count += len(r["Instances"])
                live += sum(1 for i in r["Instances"] if i["State"]["Name"] != "terminated")
        print(json.dumps({"count": count, "live": live}))
    else:
        region, ami = a.args
        ec2 = client("ec2", a.endpoint, region)
        image = ec2.describe_images(ImageIds=[ami])["Images"][0]
        ids = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
        snaps = ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]
        print(json.dumps([{"snapshot_id": s["SnapshotId"], "encrypted": s["Encrypted"],
                           "kms_key_id": s.get("KmsKeyId")} for s in snaps]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
