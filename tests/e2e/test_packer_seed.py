"""The seed's table (shared/docs/aws-ebs-encryption.md §6), reproduced by the real Packer 1.6.6
building against the twin, plus the sharing failure that amiguard exists to prevent.

Each test sets up the account, runs `packer build`, and reads the final AMI's snapshots back from
the twin: the assertion is on what AWS would hold afterwards, not on Packer's log.
"""

from __future__ import annotations

from pathlib import Path

from conftest import built_amis, kms, run_packer, snapshots_of, write_json
from scenario import setup

R = "ap-northeast-1"
OTHER_ACCOUNT = "210987654321"


def builder(endpoint: str, source_ami: str, **settings: object) -> dict:
    """An amazon-ebs builder that needs no SSH and talks only to the twin."""
    return {
        "type": "amazon-ebs",
        "region": R,
        "source_ami": source_ami,
        "instance_type": "t3.micro",
        "ami_name": "seed-{{timestamp}}",
        "communicator": "none",
        "custom_endpoint_ec2": endpoint,
        "skip_region_validation": True,
        **settings,
    }


def aws_ebs_arn(endpoint: str) -> str:
    return kms(endpoint, R).describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]


def build_json(tmp_path: Path, endpoint: str, source_ami: str, **settings: object):
    template = write_json(tmp_path / "template.json",
                          {"builders": [builder(endpoint, source_ami, **settings)]})
    return run_packer(["build", "-color=false", template.name], cwd=tmp_path)


def final_snapshot(endpoint: str, result) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    amis = built_amis(result.stdout)
    assert list(amis) == [R], result.stdout
    snaps = snapshots_of(endpoint, R, amis[R])
    assert len(snaps) == 1
    return snaps[0]


def test_baseline_ebd_off_unencrypted_source_stays_unencrypted(twin, tmp_path):
    env = setup(twin, [R], ebd="off", source="unencrypted")
    snap = final_snapshot(twin, build_json(tmp_path, twin, env["source_ami"], encrypt_boot=False))
    assert snap["Encrypted"] is False
    assert "KmsKeyId" not in snap


def test_case1_ebd_on_overrides_encrypt_boot_false_with_aws_managed_key(twin, tmp_path):
    env = setup(twin, [R], ebd="on", source="unencrypted")
    snap = final_snapshot(twin, build_json(tmp_path, twin, env["source_ami"], encrypt_boot=False))
    assert snap["Encrypted"] is True
    assert snap["KmsKeyId"] == aws_ebs_arn(twin)


def test_case2_encrypted_source_stays_encrypted_with_its_key(twin, tmp_path):
    env = setup(twin, [R], ebd="off", source="aws-managed")
    snap = final_snapshot(twin, build_json(tmp_path, twin, env["source_ami"], encrypt_boot=False))
    assert snap["Encrypted"] is True
    assert snap["KmsKeyId"] == aws_ebs_arn(twin)


def test_case3_encrypt_boot_with_kms_key_id_copies_to_the_cmk(twin, tmp_path):
    env = setup(twin, [R], ebd="on", source="unencrypted")
    result = build_json(tmp_path, twin, env["source_ami"], encrypt_boot=True,
                        kms_key_id=env["cmk_arn"][R])
    assert "Copying/Encrypting AMI" in result.stdout
    snap = final_snapshot(twin, result)
    assert snap["Encrypted"] is True
    assert snap["KmsKeyId"] == env["cmk_arn"][R]


def test_sharing_fails_at_the_end_when_ebd_uses_the_aws_managed_key(twin, tmp_path):
    env = setup(twin, [R], ebd="on", source="unencrypted")
    result = build_json(tmp_path, twin, env["source_ami"], encrypt_boot=False,
                        ami_users=[OTHER_ACCOUNT])
    assert result.returncode == 1
    assert "InvalidParameter: Snapshots encrypted with the AWS Managed CMK can't be shared" \
        in result.stdout + result.stderr
    assert built_amis(result.stdout) == {}


HCL2_TEMPLATE = """
variable "kms_key" {
  type = string
}

source "amazon-ebs" "golden" {
  region                 = "%(region)s"
  source_ami             = "%(source_ami)s"
  instance_type          = "t3.micro"
  ami_name               = "seed-hcl-${formatdate("YYYYMMDDhhmmss", timestamp())}"
  communicator           = "none"
  custom_endpoint_ec2    = "%(endpoint)s"
  skip_region_validation = true
  encrypt_boot           = true
  kms_key_id             = var.kms_key
}

build {
  sources = ["source.amazon-ebs.golden"]
}
"""


def test_hcl2_template_case3_gives_the_same_result(twin, tmp_path):
    env = setup(twin, [R], ebd="on", source="unencrypted")
    (tmp_path / "golden.pkr.hcl").write_text(HCL2_TEMPLATE % {
        "region": R, "source_ami": env["source_ami"], "endpoint": twin})
    result = run_packer(["build", "-color=false", "-var", f"kms_key={env['cmk_arn'][R]}",
                         "golden.pkr.hcl"], cwd=tmp_path)
    assert "Copying/Encrypting AMI" in result.stdout
    amis = built_amis(result.stdout)
    assert result.returncode == 0 and list(amis) == [R], result.stdout + result.stderr
    (snap,) = snapshots_of(twin, R, amis[R])
    assert (snap["Encrypted"], snap["KmsKeyId"]) == (True, env["cmk_arn"][R])


def test_machine_readable_artifact_line_names_region_and_ami(twin, tmp_path):
    """The artifact line amiguard will parse (facts §5) has the documented shape."""
    env = setup(twin, [R], ebd="off", source="unencrypted")
    template = write_json(tmp_path / "t.json",
                          {"builders": [builder(twin, env["source_ami"], encrypt_boot=False)]})
    result = run_packer(["build", "-machine-readable", template.name], cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    ids = [line.split(",", 5)[5] for line in result.stdout.splitlines()
           if ",artifact,0,id," in line]
    assert len(ids) == 1 and ids[0].startswith(f"{R}:ami-"), ids
