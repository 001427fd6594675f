"""The EBS encryption rules that plain moto lacks, patched into moto's EC2 and KMS models.

Plain moto gives every AMI one fresh unencrypted snapshot, ignores EBS encryption by default
(EBD) when it creates volumes and copies, has no GetEbsDefaultKmsKeyId/ResetEbsDefaultKmsKeyId
(HTTP 500), reports AWS managed keys as CUSTOMER and lets any snapshot be shared. Each patch below
says which AWS behaviour it models and where that is written down: "facts §N" is a section of
shared/docs/aws-ebs-encryption.md, which cites the AWS documentation it comes from.

`install()` applies every patch once; it must run before moto's server handles a request.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import EC2ClientError, InvalidParameterDependency
from moto.ec2.models import amis as moto_amis
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.responses import EC2Response
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import random_ami_id, random_snapshot_id
from moto.kms import kms_backends
from moto.kms.models import KmsBackend
from moto.kms.responses import KmsResponse

_orig_list_aliases = KmsResponse.list_aliases

AWS_EBS_ALIAS = "alias/aws/ebs"


# --------------------------------------------------------------------------------------------
# KMS (facts §4)
# --------------------------------------------------------------------------------------------

def _kms(account_id: str, region: str) -> KmsBackend:
    return kms_backends[account_id][region]


_orig_generate_default_keys = KmsBackend._generate_default_keys


def _generate_default_keys(self: KmsBackend, alias_name: str) -> str | None:
    """Keys behind the reserved `alias/aws/` prefix are AWS managed: DescribeKey reports
    KeyManager AWS (facts §4; KMS API reference, KeyMetadata.KeyManager). Like AWS, moto creates
    such a key the first time the alias is used (the side effect facts §4 warns about)."""
    key_id = _orig_generate_default_keys(self, alias_name)
    if key_id is not None:
        self.keys[key_id].key_manager = "AWS"
        self.keys[key_id].description = "Default key that protects my EBS volumes"
    return key_id


_orig_disable_key = KmsBackend.disable_key
_orig_enable_key = KmsBackend.enable_key


def _disable_key(self: KmsBackend, key_id: str) -> None:
    """DisableKey/EnableKey take a key id or key ARN (KMS API reference); moto only an id."""
    _orig_disable_key(self, self.get_key_id(key_id))


def _enable_key(self: KmsBackend, key_id: str) -> None:
    _orig_enable_key(self, self.get_key_id(key_id))


def _list_aliases(self: Any) -> str:
    """ListAliases lists the predefined `alias/aws/…` aliases even before their key exists, but
    then without a TargetKeyId (KMS API reference, ListAliases: "several aliases that do not have
    a TargetKeyId field … not yet associated with a KMS key"). moto gave them a made-up one."""
    import json

    out = json.loads(_orig_list_aliases(self))
    for alias in out["Aliases"]:
        if alias["AliasName"].startswith("alias/aws/") and not self.kms_backend.alias_exists(
            alias["AliasName"]
        ):
            alias.pop("TargetKeyId", None)
    return json.dumps(out)


def aws_managed_ebs_key_arn(account_id: str, region: str) -> str:
    """The ARN of `aws/ebs` in a Region, created on first use as AWS does (facts §1, §4)."""
    kms = _kms(account_id, region)
    key_id = kms.get_key_id_from_alias(AWS_EBS_ALIAS)
    return kms.keys[key_id].arn


def resolve_key(account_id: str, region: str, key_ref: str) -> Any | None:
    """The key a key id, key ARN, alias or alias ARN names in `region`, or None.

    Keys are regional: an ARN that names another Region does not resolve here (facts §2, §4)."""
    if key_ref.startswith("arn:"):
        parts = key_ref.split(":")
        if len(parts) < 6 or parts[3] != region:
            return None
    kms = _kms(account_id, region)
    try:
        key_id = kms.any_id_to_key_id(key_ref)
    except Exception:  # moto raises several kinds for an unknown alias
        return None
    return kms.keys.get(key_id)


def _usable(key: Any | None) -> bool:
    return key is not None and key.key_state == "Enabled"


def key_manager_of(account_id: str, region: str, key_arn: str | None) -> str | None:
    key = resolve_key(account_id, region, key_arn) if key_arn else None
    return key.key_manager if key is not None else None


# --------------------------------------------------------------------------------------------
# EBS encryption by default and the default key (facts §1)
# --------------------------------------------------------------------------------------------

def _twin_default_key_ref(backend: Any) -> str | None:
    return getattr(backend, "twin_default_key_arn", None)


def default_key_arn(backend: Any) -> str:
    """The key EBD and `Encrypted=true` use in this Region: the customer key set with
    ModifyEbsDefaultKmsKeyId, else the AWS managed `aws/ebs` (facts §1)."""
    return _twin_default_key_ref(backend) or aws_managed_ebs_key_arn(
        backend.account_id, backend.region_name
    )


def _get_ebs_default_kms_key_id(self: EC2Response) -> Any:
    """GetEbsDefaultKmsKeyId: plain moto answers HTTP 500. Until a customer key is set AWS's CLI
    example shows the literal `alias/aws/ebs`; after ModifyEbsDefaultKmsKeyId, the key's ARN.
    Both forms occur in the wild (facts §1), so the twin answers with both."""
    from moto.core.responses import ActionResult

    arn = _twin_default_key_ref(self.ec2_backend)
    return ActionResult({"KmsKeyId": arn or AWS_EBS_ALIAS})


def _modify_ebs_default_kms_key_id(self: EC2Response) -> Any:
    """ModifyEbsDefaultKmsKeyId accepts the four key-id forms and stores the key's ARN. AWS
    does not reject a disabled key here: launches fail later (facts §1)."""
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    ref = self._get_param("KmsKeyId")
    backend = self.ec2_backend
    key = resolve_key(backend.account_id, backend.region_name, ref)
    if key is None:
        raise EC2ClientError("InvalidParameterValue", f"Invalid KMS key: {ref}")
    backend.twin_default_key_arn = None if key.key_manager == "AWS" else key.arn
    return ActionResult({"KmsKeyId": key.arn})


def _reset_ebs_default_kms_key_id(self: EC2Response) -> Any:
    """ResetEbsDefaultKmsKeyId goes back to the AWS managed `aws/ebs` (facts §1)."""
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    backend = self.ec2_backend
    backend.twin_default_key_arn = None
    return ActionResult(
        {"KmsKeyId": aws_managed_ebs_key_arn(backend.account_id, backend.region_name)}
    )


# --------------------------------------------------------------------------------------------
# Volumes: RunInstances and CreateVolume (facts §1, §2 table)
# --------------------------------------------------------------------------------------------

def volume_encryption(
    backend: Any, snapshot: Snapshot | None, encrypted: bool, kms_key_id: str | None
) -> tuple[bool, str | None]:
    """(encrypted, key ARN) of a new volume, per the "encryption outcomes" table (facts §2):

    - KmsKeyId without Encrypted: InvalidParameterDependency.
    - Encrypted + KmsKeyId=K: K, whatever the snapshot (an encrypted one is re-encrypted).
    - an encrypted snapshot you own: its key; one shared with you: your default key.
    - an unencrypted snapshot or none: unencrypted, unless Encrypted=true or EBD is on, then the
      default key.
    """
    if kms_key_id and not encrypted:
        raise InvalidParameterDependency("KmsKeyId", "Encrypted")
    if kms_key_id:
        key = resolve_key(backend.account_id, backend.region_name, kms_key_id)
        if key is None:
            raise EC2ClientError(
                "InvalidKMSKey.NotFound", f"The KMS key {kms_key_id} does not exist"
            )
        return True, key.arn
    if snapshot is not None and snapshot.encrypted:
        if snapshot.owner_id == backend.account_id and snapshot.kms_key_id:
            return True, snapshot.kms_key_id
        return True, default_key_arn(backend)
    if encrypted or backend.ebs_encryption_by_default:
        return True, default_key_arn(backend)
    return False, None


def _create_volume(
    self: EBSBackend,
    size: int,
    zone_name: str,
    snapshot_id: str | None = None,
    encrypted: bool = False,
    kms_key_id: str | None = None,
    volume_type: str | None = None,
    iops: int | None = None,
    throughput: int | None = None,
    multi_attach_enabled: bool | None = None,
) -> Any:
    snapshot = self.get_snapshot(snapshot_id) if snapshot_id else None
    is_encrypted, key_arn = volume_encryption(self, snapshot, _truthy(encrypted), kms_key_id)
    volume = _orig_create_volume(
        self,
        size=size if size is not None or snapshot is None else snapshot.volume.size,
        zone_name=zone_name,
        snapshot_id=snapshot_id,
        encrypted=False,
        kms_key_id=None,
        volume_type=volume_type,
        iops=iops,
        throughput=throughput,
        multi_attach_enabled=multi_attach_enabled,
    )
    volume.encrypted = is_encrypted
    volume.kms_key_id = key_arn
    return volume


_orig_create_volume = EBSBackend.create_volume


def _truthy(value: Any) -> bool:
    return str(value).lower() == "true"


def _run_instances(self: Any, image_id: str, count: int, user_data: Any,
                   security_group_names: list[str], **kwargs: Any) -> Any:
    """RunInstances makes one volume from each of the AMI's block device mappings, with the
    request's mappings laid over them by device name (facts §2). Plain moto gives every
    instance one empty unencrypted volume instead."""
    ami = self.amis.get(image_id)
    if ami is not None and getattr(ami, "twin_bdm", None) is not None:
        requested = {m["DeviceName"]: m for m in kwargs.get("block_device_mappings") or []}
        merged = []
        for m in ami.twin_bdm:
            ebs = {
                "SnapshotId": m["SnapshotId"],
                "VolumeSize": m["VolumeSize"],
                "VolumeType": m["VolumeType"],
                "DeleteOnTermination": True,
                "Encrypted": False,
                "KmsKeyId": None,
            }
            over = requested.pop(m["DeviceName"], None)
            if over is not None:
                if over.get("NoDevice") == "":
                    continue
                for k, v in (over.get("Ebs") or {}).items():
                    if v is not None and k != "SnapshotId":
                        ebs[k] = v
            merged.append({"DeviceName": m["DeviceName"], "Ebs": ebs, "NoDevice": None})
        merged.extend(requested.values())
        kwargs["block_device_mappings"] = merged
    return _orig_run_instances(self, image_id, count, user_data, security_group_names, **kwargs)


_orig_run_instances = InstanceBackend.run_instances


def _validate_block_device_mapping(device_mapping: dict[str, Any]) -> None:
    """A RunInstances mapping may name only an AMI device and its encryption (no size, no
    snapshot): AWS fills the rest from the AMI's mapping. moto demanded a size or a snapshot."""
    if "NoDevice" in device_mapping and device_mapping["NoDevice"] not in ("", None):
        raise EC2ClientError("InvalidRequest", "NoDevice must be empty")


# --------------------------------------------------------------------------------------------
# Snapshots (facts §1, §2)
# --------------------------------------------------------------------------------------------

_orig_create_snapshot = EBSBackend.create_snapshot


def _create_snapshot(self: EBSBackend, volume_id: str, description: str,
                     owner_id: str | None = None, from_ami: str | None = None) -> Snapshot:
    """A snapshot takes its volume's encryption *and key*; moto copied only the flag."""
    snap = _orig_create_snapshot(self, volume_id, description, owner_id, from_ami)
    snap.kms_key_id = self.get_volume(volume_id).kms_key_id
    return snap


def copy_encryption(
    dest: Any, src_snap: Snapshot, same_region: bool, encrypted: bool, kms_key_id: str | None
) -> tuple[bool, str | None, bool]:
    """(encrypted, key ARN, key usable) of one snapshot copied into `dest`'s Region (facts §2):

    - no parameters: the snapshot keeps its state; an owned encrypted one keeps its key in the
      same Region, and takes the destination's default key in another;
    - EBD on in the destination: as if Encrypted=true;
    - Encrypted=true + KmsKeyId=K: K, which must exist (and be enabled) in the destination. A bad
      K is not rejected up front: the copy fails later (the caller marks it failed).
    """
    if kms_key_id and not encrypted:
        raise InvalidParameterDependency("KmsKeyId", "Encrypted")
    want = encrypted or dest.ebs_encryption_by_default or src_snap.encrypted
    if not want:
        return False, None, True
    if kms_key_id:
        key = resolve_key(dest.account_id, dest.region_name, kms_key_id)
        return True, key.arn if key is not None else kms_key_id, _usable(key)
    if (src_snap.encrypted and same_region and src_snap.kms_key_id
            and src_snap.owner_id == dest.account_id):
        return True, src_snap.kms_key_id, True
    return True, default_key_arn(dest), True


def _copy_snapshot(self: EC2Response) -> Any:
    """CopySnapshot with Encrypted/KmsKeyId and the Region rules (facts §2); moto ignored
    Encrypted and accepted any key string."""
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    dest = self.ec2_backend
    source_region = self._get_param("SourceRegion")
    src = ec2_backends[dest.account_id][source_region]
    src_snap = src.get_snapshot(self._get_param("SourceSnapshotId"))
    enc, key, ok = copy_encryption(
        dest, src_snap, source_region == dest.region_name,
        bool(self._get_bool_param("Encrypted", False)), self._get_param("KmsKeyId"),
    )
    snap = Snapshot(dest, random_snapshot_id(), volume=src_snap.volume,
                    description=self._get_param("Description") or "",
                    encrypted=enc, kms_key_id=key)
    if not ok:
        snap.status = "error"
    dest.snapshots[snap.id] = snap
    snap.add_tags(self._parse_tag_specification().get("snapshot", {}))
    return ActionResult({"SnapshotId": snap.id})


# --------------------------------------------------------------------------------------------
# AMIs: their snapshots, CreateImage, RegisterImage, CopyImage (facts §1, §2, §5)
# --------------------------------------------------------------------------------------------

class TwinAmi(Ami):
    """An AMI whose block device mappings point at real snapshots in the twin.

    `twin_bdm` is a list of {DeviceName, SnapshotId, VolumeSize, VolumeType}. AMIs that moto
    loads at start-up keep moto's single unencrypted snapshot (they are what a public,
    unencrypted Amazon AMI is)."""

    # moto's model registry files classes by the service named in their module path.
    __module__ = "moto.ec2.models.amis"

    twin_bdm: list[dict[str, Any]] | None = None
    state_reason: dict[str, str] | None = None

    def _set_snapshots(self, mappings: list[dict[str, Any]]) -> None:
        """Drop moto's placeholder snapshot and point the AMI at `mappings`."""
        placeholder = self.ebs_snapshot
        self.ec2_backend.snapshots.pop(placeholder.id, None)
        self.twin_bdm = mappings
        for m in mappings:
            snap = self.ec2_backend.snapshots.get(m["SnapshotId"])
            if snap is not None:
                snap.from_ami = self.id
        if mappings:
            first = self.ec2_backend.snapshots.get(mappings[0]["SnapshotId"])
            if first is not None:
                self.ebs_snapshot = first

    @property
    def block_device_mappings(self) -> list[dict[str, Any]]:
        if self.twin_bdm is None:
            return Ami.block_device_mappings.fget(self)  # type: ignore[attr-defined]
        out = []
        for m in self.twin_bdm:
            snap = self.ec2_backend.snapshots.get(m["SnapshotId"])
            out.append({
                "DeviceName": m["DeviceName"],
                "Ebs": {
                    "SnapshotId": m["SnapshotId"],
                    "VolumeSize": m["VolumeSize"],
                    "DeleteOnTermination": True,
                    "VolumeType": m["VolumeType"],
                    "Encrypted": bool(snap and snap.encrypted),
                },
            })
        return out

    def snapshots(self) -> list[Snapshot]:
        if self.twin_bdm is None:
            return [self.ebs_snapshot]
        return [self.ec2_backend.snapshots[m["SnapshotId"]] for m in self.twin_bdm
                if m["SnapshotId"] in self.ec2_backend.snapshots]


_orig_create_image = AmiBackend.create_image


def _create_image(self: Any, instance_id: str, name: str, description: str,
                  tag_specifications: list[dict[str, Any]]) -> Ami:
    """CreateImage snapshots every volume of the instance, each keeping its volume's
    encryption and key (facts §1: "CreateImage snapshots take the state of the instance's
    volumes"). moto made one fresh unencrypted snapshot instead."""
    ami = _orig_create_image(self, instance_id, name, description, tag_specifications)
    instance = self.get_instance(instance_id)
    mappings = []
    for device, bdt in instance.block_device_mapping.items():
        volume = self.get_volume(bdt.volume_id)
        snap = self.create_snapshot(
            volume.id, f"Created by CreateImage({instance_id}) for {ami.id}", from_ami=ami.id
        )
        mappings.append({"DeviceName": device, "SnapshotId": snap.id,
                         "VolumeSize": volume.size, "VolumeType": volume.volume_type})
    ami._set_snapshots(mappings)
    ami.root_device_type = "ebs"
    return ami


def _register_image(self: EC2Response) -> Any:
    """RegisterImage from snapshots (BlockDeviceMappings, RootDeviceName): how the tests make
    source AMIs, encrypted or not. moto ignored the mappings."""
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    backend = self.ec2_backend
    root = self._get_param("RootDeviceName") or "/dev/xvda"
    ami = TwinAmi(backend, random_ami_id(), name=self._get_param("Name"),
                  description=self._get_param("Description", ""),
                  architecture=self._get_param("Architecture") or "x86_64",
                  virtualization_type=self._get_param("VirtualizationType") or "hvm",
                  root_device_name=root, root_device_type="ebs",
                  region_name=backend.region_name)
    mappings = []
    for m in self._get_param("BlockDeviceMappings", []):
        ebs = m.get("Ebs") or {}
        snap = backend.get_snapshot(ebs["SnapshotId"])
        mappings.append({"DeviceName": m["DeviceName"], "SnapshotId": snap.id,
                         "VolumeSize": int(ebs.get("VolumeSize") or snap.volume.size),
                         "VolumeType": ebs.get("VolumeType") or "gp2"})
    ami._set_snapshots(mappings)
    backend.amis[ami.id] = ami
    return ActionResult({"ImageId": ami.id})


def _copy_image_response(self: EC2Response) -> Any:
    """CopyImage with Encrypted/KmsKeyId (facts §2, §5). moto dropped both."""
    from moto.core.responses import ActionResult

    self.error_on_dryrun()
    image = twin_copy_image(
        self.ec2_backend,
        self._get_param("SourceImageId"),
        self._get_param("SourceRegion"),
        self._get_param("Name"),
        self._get_param("Description"),
        bool(self._get_bool_param("Encrypted", False)),
        self._get_param("KmsKeyId"),
    )
    return ActionResult({"ImageId": image.id})


def twin_copy_image(dest: Any, source_image_id: str, source_region: str, name: str | None,
                    description: str | None, encrypted: bool, kms_key_id: str | None) -> Ami:
    """Copy every snapshot of the source AMI by the CopySnapshot rules (`copy_encryption`).

    A KmsKeyId that does not exist or is disabled in the destination is accepted, and the new
    AMI ends in state `failed` ("Copy image failed with an internal error", facts §2), which is
    what makes Packer's waiter fail."""
    src_backend = ec2_backends[dest.account_id][source_region]
    src_ami = src_backend.describe_images(ami_ids=[source_image_id])[0]
    src_snaps = src_ami.snapshots() if isinstance(src_ami, TwinAmi) else [src_ami.ebs_snapshot]
    src_bdm = (src_ami.twin_bdm if isinstance(src_ami, TwinAmi) and src_ami.twin_bdm is not None
               else [{"DeviceName": src_ami.root_device_name,
                      "SnapshotId": src_ami.ebs_snapshot.id, "VolumeSize": 15,
                      "VolumeType": "standard"}])
    ami = TwinAmi(dest, random_ami_id(), source_ami=src_ami, name=name,
                  description=description, root_device_name=src_ami.root_device_name,
                  root_device_type="ebs", region_name=dest.region_name)
    mappings = []
    failed = False
    for m, src_snap in zip(src_bdm, src_snaps):
        enc, key, ok = copy_encryption(
            dest, src_snap, source_region == dest.region_name, encrypted, kms_key_id
        )
        failed = failed or not ok
        snap = Snapshot(dest, random_snapshot_id(), volume=src_snap.volume,
                        description=f"Copied for DestinationAmi {ami.id} from SourceAmi "
                                    f"{source_image_id} for SourceSnapshot {src_snap.id}",
                        encrypted=enc, kms_key_id=key)
        dest.snapshots[snap.id] = snap
        mappings.append({**m, "SnapshotId": snap.id})
    if failed:
        for m in mappings:
            dest.snapshots.pop(m["SnapshotId"], None)
        mappings = []
        ami.state = "failed"
        ami.state_reason = {"Code": "Client.InternalError",
                            "Message": "Copy image failed with an internal error"}
    ami._set_snapshots(mappings)
    dest.amis[ami.id] = ami
    return ami


# --------------------------------------------------------------------------------------------
# Sharing (facts §3)
# --------------------------------------------------------------------------------------------

_orig_modify_image_attribute = AmiBackend.modify_image_attribute


def _modify_image_attribute(self: Any, ami_id: str, launch_permissions_to_add: list[dict[str, str]],
                            launch_permissions_to_remove: list[dict[str, str]]) -> None:
    """Sharing an AMI whose snapshots are on the AWS managed key fails with the error Packer
    users see at the end of a build; only unencrypted AMIs can be made public (facts §3)."""
    ami = self.describe_images(ami_ids=[ami_id])[0]
    snaps = ami.snapshots() if isinstance(ami, TwinAmi) else [ami.ebs_snapshot]
    if launch_permissions_to_add:
        if any(_on_aws_managed_key(self, s) for s in snaps):
            raise EC2ClientError(
                "InvalidParameter",
                "Snapshots encrypted with the AWS Managed CMK can't be shared. "
                "Specify another snapshot.",
            )
        if any(p.get("Group") == "all" for p in launch_permissions_to_add) and any(
            s.encrypted for s in snaps
        ):
            raise EC2ClientError(
                "InvalidParameter", "Encrypted snapshots cannot be made public."
            )
    _orig_modify_image_attribute(self, ami_id, launch_permissions_to_add,
                                 launch_permissions_to_remove)


_orig_add_create_volume_permission = EBSBackend.add_create_volume_permission


def _add_create_volume_permission(self: Any, snapshot_id: str, user_ids: list[str],
                                  groups: list[str]) -> None:
    """ModifySnapshotAttribute: a snapshot on the AWS managed key cannot be shared (facts §3)."""
    snap = self.get_snapshot(snapshot_id)
    if (user_ids or groups) and _on_aws_managed_key(self, snap):
        raise EC2ClientError(
            "OperationNotPermitted", "Encrypted snapshots with EBS default key cannot be shared"
        )
    if groups and snap.encrypted:
        raise EC2ClientError("OperationNotPermitted", "Encrypted snapshots cannot be made public")
    _orig_add_create_volume_permission(self, snapshot_id, user_ids, groups)


def _on_aws_managed_key(backend: Any, snap: Snapshot) -> bool:
    if not snap.encrypted:
        return False
    return key_manager_of(backend.account_id, backend.region_name, snap.kms_key_id) != "CUSTOMER"


# --------------------------------------------------------------------------------------------

def _deny(method_name: str) -> None:
    """Makes one EC2 action answer UnauthorizedOperation, as AWS does for a role without the IAM
    permission: the tests' stand-in for a CI role that lacks `ec2:GetEbs…` (facts §1, IAM)."""
    original = getattr(EC2Response, method_name)

    def denied(self: EC2Response) -> Any:
        raise EC2ClientError(
            "UnauthorizedOperation", "You are not authorized to perform this operation."
        )

    denied.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(EC2Response, method_name, denied)


def _slow(method_name: str, seconds: float) -> None:
    """Makes one EC2 action take `seconds` (a real build's minutes, shortened), so that tests
    can interrupt Packer while its instance runs."""
    import time

    original = getattr(EC2Response, method_name)

    def slow(self: EC2Response) -> Any:
        time.sleep(seconds)
        return original(self)

    setattr(EC2Response, method_name, slow)


def _snake(action: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")


_installed = False


def install(deny: list[str] | None = None, slow: dict[str, float] | None = None) -> None:
    """Apply every patch above to moto (idempotent). `deny` lists EC2 actions (for example
    `GetEbsEncryptionByDefault`) to refuse with UnauthorizedOperation; `slow` delays actions."""
    global _installed
    if _installed:
        return
    _installed = True
    for action in deny or []:
        _deny(_snake(action))
    for action, seconds in (slow or {}).items():
        _slow(_snake(action), seconds)
    KmsBackend._generate_default_keys = _generate_default_keys
    KmsResponse.list_aliases = _list_aliases
    KmsBackend.disable_key = _disable_key
    KmsBackend.enable_key = _enable_key
    EBSBackend.create_volume = _create_volume
    EBSBackend.create_snapshot = _create_snapshot
    EBSBackend.add_create_volume_permission = _add_create_volume_permission
    InstanceBackend.run_instances = _run_instances
    InstanceResponse._validate_block_device_mapping = staticmethod(_validate_block_device_mapping)
    AmiBackend.create_image = _create_image
    AmiBackend.modify_image_attribute = _modify_image_attribute
    # CreateImage and CopyImage build `Ami` through the module global.
    moto_amis.Ami = TwinAmi
    EC2Response.get_ebs_default_kms_key_id = _get_ebs_default_kms_key_id
    EC2Response.modify_ebs_default_kms_key_id = _modify_ebs_default_kms_key_id
    EC2Response.reset_ebs_default_kms_key_id = _reset_ebs_default_kms_key_id
    EC2Response.copy_snapshot = _copy_snapshot
    EC2Response.copy_image = _copy_image_response
    EC2Response.register_image = _register_image
