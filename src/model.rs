//! The plain data the prediction core works on: what the template asks for (`Settings`) and what
//! the account holds (`Facts`). No I/O here; the template readers and the AWS layer fill these in.

use std::collections::BTreeMap;

use serde::Serialize;

/// Who manages a KMS key: `aws/ebs` and every other `alias/aws/…` key is AWS managed and can
/// never be shared (facts §3, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeyManager {
    /// An AWS managed key (`KeyManager: AWS`).
    Aws,
    /// A customer managed key (`KeyManager: CUSTOMER`).
    Customer,
}

/// A KMS key as DescribeKey reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key ARN, or the literal `alias/aws/ebs` when that is all the account said.
    pub arn: String,
    /// Who manages it.
    pub manager: KeyManager,
    /// Whether the key can be used (KeyState `Enabled`).
    pub enabled: bool,
}

impl KeyInfo {
    /// The AWS managed EBS key of a Region, known without asking KMS (facts §4: DescribeKey on
    /// `alias/aws/ebs` would create the key, so a read-only tool never calls it).
    pub fn aws_ebs(arn: Option<String>) -> KeyInfo {
        KeyInfo {
            arn: arn.unwrap_or_else(|| AWS_EBS_ALIAS.to_string()),
            manager: KeyManager::Aws,
            enabled: true,
        }
    }

    /// Whether this is the AWS managed key.
    pub fn is_aws_managed(&self) -> bool {
        self.manager == KeyManager::Aws
    }
}

/// The alias of the AWS managed EBS key.
pub const AWS_EBS_ALIAS: &str = "alias/aws/ebs";

/// Whether a key reference names an AWS managed key by its reserved alias (facts §4).
pub fn is_aws_alias(key_ref: &str) -> bool {
    key_ref.starts_with("alias/aws/") || key_ref.contains(":alias/aws/")
}

/// A `launch_block_device_mappings` entry, as far as encryption goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchMapping {
    /// `device_name`.
    pub device: String,
    /// `encrypted`.
    pub encrypted: Option<bool>,
    /// `kms_key_id`.
    pub kms_key_id: Option<String>,
}

/// Who the build shares its AMI with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sharing {
    /// Other accounts, organizations or OUs get launch or create-volume permission.
    pub with_accounts: bool,
    /// `ami_groups` or `snapshot_groups` has `all`: the AMI is made public.
    pub public: bool,
}

/// The encryption settings of one amazon-ebs build, every value known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `region`: where the instance runs and the AMI is first made.
    pub region: String,
    /// `encrypt_boot`: unset, true or false (facts §5: three states).
    pub encrypt_boot: Option<bool>,
    /// `kms_key_id`.
    pub kms_key_id: Option<String>,
    /// `ami_regions`, in template order.
    pub ami_regions: Vec<String>,
    /// `region_kms_key_ids`; `""` is that Region's default key.
    pub region_kms_key_ids: BTreeMap<String, String>,
    /// `launch_block_device_mappings`.
    pub launch_mappings: Vec<LaunchMapping>,
    /// The sharing fields, summed up.
    pub sharing: Sharing,
}

impl Settings {
    /// Every Region the build ends with an AMI in: the build Region first, then `ami_regions`.
    pub fn final_regions(&self) -> Vec<String> {
        let mut out = vec![self.region.clone()];
        for r in &self.ami_regions {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }
}

/// EBS encryption settings of one Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionFacts {
    /// GetEbsEncryptionByDefault.
    pub ebd: bool,
    /// GetEbsDefaultKmsKeyId, resolved.
    pub default_key: KeyInfo,
}

/// One snapshot of the source AMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSnapshot {
    /// The device it is mapped to.
    pub device: String,
    /// The snapshot id.
    pub snapshot_id: String,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Its key, when encrypted.
    pub key: Option<KeyInfo>,
    /// Whether this account owns it (a snapshot shared with you is re-encrypted to your default
    /// key at launch: facts §2).
    pub owned: bool,
}

/// Everything the prediction reads from the account for one build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Per Region involved.
    pub regions: BTreeMap<String, RegionFacts>,
    /// The source AMI's id.
    pub source_ami: String,
    /// The source AMI's EBS snapshots.
    pub source: Vec<SourceSnapshot>,
    /// Every key the template or the intent names, per (Region, reference as written); `None`
    /// when it does not exist in that Region.
    pub keys: BTreeMap<(String, String), Option<KeyInfo>>,
}

impl Facts {
    /// The key a reference names in a Region, as looked up.
    pub fn key(&self, region: &str, key_ref: &str) -> Option<&KeyInfo> {
        self.keys
            .get(&(region.to_string(), key_ref.to_string()))
            .and_then(Option::as_ref)
    }
}

/// Account facts for the pure core's table tests: `aws/ebs` and a customer key `alias/team` in
/// every Region, and one source snapshot, unencrypted or on the key given.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    /// The build Region of the seed.
    pub const R: &str = "ap-northeast-1";
    /// A second Region.
    pub const R2: &str = "us-east-1";

    /// `aws/ebs` in a Region.
    pub fn aws(region: &str) -> KeyInfo {
        KeyInfo::aws_ebs(Some(format!("arn:aws:kms:{region}:111:key/aws-ebs")))
    }

    /// The customer key `alias/team` in a Region.
    pub fn cmk(region: &str) -> KeyInfo {
        KeyInfo {
            arn: format!("arn:aws:kms:{region}:111:key/cmk"),
            manager: KeyManager::Customer,
            enabled: true,
        }
    }

    /// Regions with EBD on or off (default key aws/ebs), and the source snapshot's key.
    pub fn facts(regions: &[(&str, bool)], source: Option<KeyInfo>) -> Facts {
        let mut f = Facts {
            source_ami: "ami-src".into(),
            ..Facts::default()
        };
        for (r, on) in regions {
            f.regions.insert(
                r.to_string(),
                RegionFacts {
                    ebd: *on,
                    default_key: aws(r),
                },
            );
            f.keys
                .insert((r.to_string(), "alias/team".into()), Some(cmk(r)));
        }
        f.source.push(SourceSnapshot {
            device: "/dev/xvda".into(),
            snapshot_id: "snap-src".into(),
            encrypted: source.is_some(),
            key: source,
            owned: true,
        });
        f
    }
}
