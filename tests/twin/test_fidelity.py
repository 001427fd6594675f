"""The twin reproduces AWS's EBS encryption rules (shared/docs/aws-ebs-encryption.md §1–§4).

Each test drives the twin through boto3 exactly as a client of AWS would, and fails if the
twin falls back to plain moto's behaviour.
"""

from __future__ import annotations

import botocore.exceptions
import pytest

from conftest import ec2, kms
from scenario import make_cmk, make_source_ami

R = "ap-northeast-1"
R2 = "us-east-1"


def error_code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def aws_ebs_arn(endpoint: str, region: str) -> str:
    return kms(endpoint, region).describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]


def launch(endpoint: str, region: str, ami: str, **mapping: object) -> dict:
    """Launch one instance and return its root volume as DescribeVolumes reports it."""
    c = ec2(endpoint, region)
    kwargs: dict = {"ImageId": ami, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    if mapping:
        kwargs["BlockDeviceMappings"] = [{"DeviceName": "/dev/xvda", "Ebs": dict(mapping)}]
    inst = c.run_instances(**kwargs)["Instances"][0]
    vols = c.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [inst["InstanceId"]]}]
    )["Volumes"]
    assert len(vols) == 1, vols
    return vols[0]


# §1 Encryption by default and the default key ---------------------------------------------

def test_ebd_is_off_by_default_and_flips_per_region(twin):
    c, c2 = ec2(twin, R), ec2(twin, R2)
    assert c.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    c.enable_ebs_encryption_by_default()
    assert c.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert c2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    c.disable_ebs_encryption_by_default()
    assert c.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False


def test_default_key_is_aws_ebs_alias_until_modified_then_arn_then_reset(twin):
    c = ec2(twin, R)
    assert c.get_ebs_default_kms_key_id()["KmsKeyId"] == "alias/aws/ebs"
    cmk = make_cmk(twin, R, "alias/team")
    assert c.modify_ebs_default_kms_key_id(KmsKeyId="alias/team")["KmsKeyId"] == cmk
    assert c.get_ebs_default_kms_key_id()["KmsKeyId"] == cmk
    reset = c.reset_ebs_default_kms_key_id()["KmsKeyId"]
    assert reset == aws_ebs_arn(twin, R)
    assert c.get_ebs_default_kms_key_id()["KmsKeyId"] == "alias/aws/ebs"


@pytest.mark.parametrize("form", ["id", "arn", "alias", "alias_arn"])
def test_default_key_accepts_all_four_key_id_forms(twin, form):
    cmk = make_cmk(twin, R, "alias/team")
    ref = {"id": cmk.split("/")[-1], "arn": cmk, "alias": "alias/team",
           "alias_arn": f"arn:aws:kms:{R}:123456789012:alias/team"}[form]
    assert ec2(twin, R).modify_ebs_default_kms_key_id(KmsKeyId=ref)["KmsKeyId"] == cmk


# §2 Launching: the encryption outcomes table ------------------------------------------------

def test_unencrypted_source_launches_unencrypted_with_ebd_off(twin):
    ami = make_source_ami(twin, R, "unencrypted", None)
    vol = launch(twin, R, ami)
    assert vol["Encrypted"] is False and "KmsKeyId" not in vol


def test_ebd_on_encrypts_launch_from_unencrypted_source_with_default_key(twin):
    ami = make_source_ami(twin, R, "unencrypted", None)
    ec2(twin, R).enable_ebs_encryption_by_default()
    vol = launch(twin, R, ami, Encrypted=False)
    assert vol["Encrypted"] is True
    assert vol["KmsKeyId"] == aws_ebs_arn(twin, R)


def test_ebd_on_uses_the_customer_default_key_when_one_is_set(twin):
    ami = make_source_ami(twin, R, "unencrypted", None)
    cmk = make_cmk(twin, R, "alias/team")
    c = ec2(twin, R)
    c.enable_ebs_encryption_by_default()
    c.modify_ebs_default_kms_key_id(KmsKeyId=cmk)
    assert launch(twin, R, ami)["KmsKeyId"] == cmk


def test_encrypted_true_uses_default_key_and_kms_key_id_names_the_key(twin):
    ami = make_source_ami(twin, R, "unencrypted", None)
    cmk = make_cmk(twin, R, "alias/team")
    assert launch(twin, R, ami, Encrypted=True)["KmsKeyId"] == aws_ebs_arn(twin, R)
    assert launch(twin, R, ami, Encrypted=True, KmsKeyId="alias/team")["KmsKeyId"] == cmk


def test_owned_encrypted_source_keeps_its_key_and_is_re_encrypted_with_kms_key_id(twin):
    cmk = make_cmk(twin, R, "alias/team")
    other = make_cmk(twin, R, "alias/other")
    ami = make_source_ami(twin, R, "cmk", cmk)
    assert launch(twin, R, ami)["KmsKeyId"] == cmk
    assert launch(twin, R, ami, Encrypted=False)["Encrypted"] is True
    assert launch(twin, R, ami, Encrypted=True, KmsKeyId=other)["KmsKeyId"] == other


def test_kms_key_id_without_encrypted_is_rejected(twin):
    ami = make_source_ami(twin, R, "unencrypted", None)
    make_cmk(twin, R, "alias/team")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        launch(twin, R, ami, KmsKeyId="alias/team")
    assert error_code(e) == "InvalidParameterDependency"


def test_create_image_snapshots_every_instance_volume_with_its_encryption(twin):
    ami = make_source_ami(twin, R, "unencrypted", None)
    cmk = make_cmk(twin, R, "alias/team")
    c = ec2(twin, R)
    inst = c.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvdb",
                              "Ebs": {"VolumeSize": 4, "Encrypted": True, "KmsKeyId": cmk}}],
    )["Instances"][0]
    image = c.create_image(InstanceId=inst["InstanceId"], Name="two-volumes")["ImageId"]
    mappings = c.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    by_device = {m["DeviceName"]: m["Ebs"] for m in mappings}
    assert set(by_device) == {"/dev/xvda", "/dev/xvdb"}
    assert by_device["/dev/xvda"]["Encrypted"] is False
    assert by_device["/dev/xvdb"]["Encrypted"] is True
    snap = c.describe_snapshots(SnapshotIds=[by_device["/dev/xvdb"]["SnapshotId"]])
    assert snap["Snapshots"][0]["KmsKeyId"] == cmk


# §2 Copying -------------------------------------------------------------------------------

def copied_snapshot(endpoint: str, region: str, ami: str) -> dict:
    c = ec2(endpoint, region)
    image = c.describe_images(ImageIds=[ami])["Images"][0]
    assert image["State"] == "available", image.get("StateReason")
    sid = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    return c.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]


def test_copy_without_parameters_keeps_state_and_same_region_key(twin):
    cmk = make_cmk(twin, R, "alias/team")
    plain = make_source_ami(twin, R, "unencrypted", None)
    keyed = make_source_ami(twin, R, "cmk", cmk)
    c = ec2(twin, R)
    a = c.copy_image(SourceImageId=plain, SourceRegion=R, Name="copy-a")["ImageId"]
    b = c.copy_image(SourceImageId=keyed, SourceRegion=R, Name="copy-b")["ImageId"]
    assert copied_snapshot(twin, R, a)["Encrypted"] is False
    assert copied_snapshot(twin, R, b)["KmsKeyId"] == cmk


def test_copy_of_encrypted_image_to_another_region_uses_destination_default_key(twin):
    cmk = make_cmk(twin, R, "alias/team")
    keyed = make_source_ami(twin, R, "cmk", cmk)
    a = ec2(twin, R2).copy_image(SourceImageId=keyed, SourceRegion=R, Name="copy-x")["ImageId"]
    assert copied_snapshot(twin, R2, a)["KmsKeyId"] == aws_ebs_arn(twin, R2)


def test_copy_into_region_with_ebd_on_is_encrypted(twin):
    plain = make_source_ami(twin, R, "unencrypted", None)
    ec2(twin, R2).enable_ebs_encryption_by_default()
    a = ec2(twin, R2).copy_image(SourceImageId=plain, SourceRegion=R, Name="copy-x",
                                 Encrypted=False)["ImageId"]
    assert copied_snapshot(twin, R2, a)["KmsKeyId"] == aws_ebs_arn(twin, R2)


def test_copy_with_encrypted_and_kms_key_id_re_encrypts_to_that_key(twin):
    plain = make_source_ami(twin, R, "unencrypted", None)
    cmk2 = make_cmk(twin, R2, "alias/team")
    a = ec2(twin, R2).copy_image(SourceImageId=plain, SourceRegion=R, Name="copy-x",
                                 Encrypted=True, KmsKeyId="alias/team")["ImageId"]
    assert copied_snapshot(twin, R2, a)["KmsKeyId"] == cmk2


@pytest.mark.parametrize("bad", ["other_region_arn", "disabled", "missing"])
def test_copy_with_bad_key_is_accepted_then_fails(twin, bad):
    plain = make_source_ami(twin, R, "unencrypted", None)
    cmk = make_cmk(twin, R, "alias/team")
    if bad == "disabled":
        kms(twin, R).disable_key(KeyId=cmk)
    key = {"other_region_arn": cmk.replace(R, R2), "disabled": cmk,
           "missing": "alias/nothing"}[bad]
    c = ec2(twin, R)
    a = c.copy_image(SourceImageId=plain, SourceRegion=R, Name="copy-x", Encrypted=True,
                     KmsKeyId=key)["ImageId"]
    image = c.describe_images(ImageIds=[a])["Images"][0]
    assert image["State"] == "failed"
    assert image["StateReason"]["Message"] == "Copy image failed with an internal error"


def test_copy_snapshot_follows_the_same_rules(twin):
    cmk2 = make_cmk(twin, R2, "alias/team")
    c = ec2(twin, R)
    vol = c.create_volume(AvailabilityZone=f"{R}a", Size=1)["VolumeId"]
    snap = c.create_snapshot(VolumeId=vol)["SnapshotId"]
    c2 = ec2(twin, R2)
    plain = c2.copy_snapshot(SourceSnapshotId=snap, SourceRegion=R)["SnapshotId"]
    keyed = c2.copy_snapshot(SourceSnapshotId=snap, SourceRegion=R, Encrypted=True,
                             KmsKeyId="alias/team")["SnapshotId"]
    got = {s["SnapshotId"]: s for s in c2.describe_snapshots(SnapshotIds=[plain, keyed])["Snapshots"]}
    assert got[plain]["Encrypted"] is False
    assert got[keyed]["KmsKeyId"] == cmk2


# §3 Sharing -------------------------------------------------------------------------------

def test_sharing_an_ami_on_the_aws_managed_key_fails_with_awss_error(twin):
    ami = make_source_ami(twin, R, "aws-managed", None)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2(twin, R).modify_image_attribute(
            ImageId=ami, LaunchPermission={"Add": [{"UserId": "210987654321"}]})
    assert error_code(e) == "InvalidParameter"
    assert "AWS Managed CMK can't be shared" in str(e.value)


def test_sharing_a_snapshot_on_the_aws_managed_key_fails_with_awss_error(twin):
    ami = make_source_ami(twin, R, "aws-managed", None)
    c = ec2(twin, R)
    sid = c.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission",
                                    OperationType="add", UserIds=["210987654321"])
    assert error_code(e) == "OperationNotPermitted"


def test_an_ami_on_a_customer_key_can_be_shared(twin):
    cmk = make_cmk(twin, R, "alias/team")
    ami = make_source_ami(twin, R, "cmk", cmk)
    c = ec2(twin, R)
    c.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"UserId": "210987654321"}]})
    perms = c.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
    assert perms["LaunchPermissions"] == [{"UserId": "210987654321"}]


# §4 KMS -----------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["id", "arn", "alias", "alias_arn"])
def test_describe_key_reports_key_manager_for_all_four_forms(twin, form):
    cmk = make_cmk(twin, R, "alias/team")
    aws = aws_ebs_arn(twin, R)
    for arn, alias, manager in [(cmk, "alias/team", "CUSTOMER"), (aws, "alias/aws/ebs", "AWS")]:
        ref = {"id": arn.split("/")[-1], "arn": arn, "alias": alias,
               "alias_arn": f"arn:aws:kms:{R}:123456789012:{alias}"}[form]
        meta = kms(twin, R).describe_key(KeyId=ref)["KeyMetadata"]
        assert (meta["Arn"], meta["KeyManager"]) == (arn, manager)


def test_list_aliases_shows_aws_ebs_without_target_until_the_key_exists(twin):
    def target():
        aliases = kms(twin, R).list_aliases()["Aliases"]
        (ebs,) = [a for a in aliases if a["AliasName"] == "alias/aws/ebs"]
        return ebs.get("TargetKeyId")

    assert target() is None
    ami = make_source_ami(twin, R, "aws-managed", None)
    assert ami
    assert target() == aws_ebs_arn(twin, R).split("/")[-1]
