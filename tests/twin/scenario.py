#!/usr/bin/env python3
"""Set up an account state on the twin, through the AWS API only, for one test.

    python3 tests/twin/scenario.py --endpoint URL --region R [--region R2 …]
        [--ebd on|off] [--default-key aws|cmk] [--source unencrypted|aws-managed|cmk]
        [--cmk-alias alias/amiguard-test] [--disabled-key-alias alias/x]

Prints one JSON object: {"source_ami": …, "cmk_arn": {region: arn}, "regions": […]}. The first
--region is the build Region: the source AMI and the key it may use live there. A customer managed
key with --cmk-alias is made in every Region given, as a user would have one per Region.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import boto3


def client(service: str, endpoint: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def make_cmk(endpoint: str, region: str, alias: str) -> str:
    kms = client("kms", endpoint, region)
    arn = kms.create_key(Description=f"amiguard test key {alias}")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def make_source_ami(endpoint: str, region: str, encryption: str, cmk_arn: str | None) -> str:
    """Register a source AMI on one snapshot: unencrypted, on aws/ebs, or on the CMK."""
    ec2 = client("ec2", endpoint, region)
    zone = f"{region}a"
    kwargs: dict[str, Any] = {"AvailabilityZone": zone, "Size": 8, "VolumeType": "gp2"}
    if encryption == "aws-managed":
        kwargs["Encrypted"] = True
        kwargs["KmsKeyId"] = "alias/aws/ebs"
    elif encryption == "cmk":
        kwargs["Encrypted"] = True
        kwargs["KmsKeyId"] = cmk_arn
    volume = ec2.create_volume(**kwargs)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=volume, Description="amiguard test source")["SnapshotId"]
    ec2.delete_volume(VolumeId=volume)
    return ec2.register_image(
        Name=f"amiguard-source-{encryption}",
        Architecture="x86_64",
        VirtualizationType="hvm",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap, "VolumeSize": 8,
                                                "VolumeType": "gp2"}}
        ],
    )["ImageId"]


def setup(endpoint: str, regions: list[str], ebd: str = "off", default_key: str = "aws",
          source: str = "unencrypted", cmk_alias: str = "alias/amiguard-test",
          disabled_key_alias: str | None = None) -> dict[str, Any]:
    build_region = regions[0]
    cmk_arn = {r: make_cmk(endpoint, r, cmk_alias) for r in regions}
    out: dict[str, Any] = {"regions": regions, "cmk_arn": cmk_arn}
    # The source first: it was made before the account's settings changed, as in the seed.
    out["source_ami"] = make_source_ami(endpoint, build_region, source, cmk_arn[build_region])
    for r in regions:
        ec2 = client("ec2", endpoint, r)
        if ebd == "on":
            ec2.enable_ebs_encryption_by_default()
        if default_key == "cmk":
            ec2.modify_ebs_default_kms_key_id(KmsKeyId=cmk_arn[r])
    if disabled_key_alias:
        kms = client("kms", endpoint, build_region)
        arn = make_cmk(endpoint, build_region, disabled_key_alias)
        kms.disable_key(KeyId=arn)
        out["disabled_key_arn"] = arn
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", action="append", required=True)
    p.add_argument("--ebd", choices=["on", "off"], default="off")
    p.add_argument("--default-key", choices=["aws", "cmk"], default="aws")
    p.add_argument("--source", choices=["unencrypted", "aws-managed", "cmk"],
                   default="unencrypted")
    p.add_argument("--cmk-alias", default="alias/amiguard-test")
    p.add_argument("--disabled-key-alias")
    p.add_argument("--extra-source", choices=["unencrypted", "aws-managed", "cmk"],
                   help="also register a second source AMI of this kind (extra_source_ami)")
    a = p.parse_args()
    out = setup(a.endpoint, a.region, a.ebd, a.default_key, a.source, a.cmk_alias,
                a.disabled_key_alias)
    if a.extra_source:
        out["extra_source_ami"] = make_source_ami(a.endpoint, a.region[0], a.extra_source,
                                                  out["cmk_arn"][a.region[0]])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
