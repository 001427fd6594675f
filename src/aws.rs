//! The account, read: EBS encryption settings and default key per Region, the source AMI and its
//! snapshots, and the keys a template or intent names. Read-only calls only; every failure names
//! the API call, the Region and, where AWS refused, the IAM permission that is missing.

use std::collections::BTreeMap;

use aws_config::Region;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Filter;

use crate::model::{KeyInfo, KeyManager, RegionFacts, SourceSnapshot, is_aws_alias};
use crate::template::SourceSpec;

/// An AWS call that failed: exit 5.
#[derive(Debug, thiserror::Error)]
#[error("{call} in {region} failed: {message}{hint}")]
pub struct AwsError {
    /// The API call.
    pub call: &'static str,
    /// The Region.
    pub region: String,
    /// AWS's error code and message, or the connection error.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// Packer's choice among the images a `source_ami_filter` matches: the newest by CreationDate
/// with `most_recent`, else exactly one (facts §5; Packer's amazon builder does the same).
pub fn pick_image(mut images: Vec<(String, String)>, most_recent: bool) -> Result<String, String> {
    // CreationDate is ISO 8601 in UTC, so text order is time order.
    images.sort_by(|a, b| a.1.cmp(&b.1));
    match (images.len(), most_recent) {
        (0, _) => Err("matches no image".into()),
        (1, _) | (_, true) => Ok(images.pop().map(|(id, _)| id).unwrap_or_default()),
        (n, false) => Err(format!(
            "matches {n} images; set most_recent = true or narrow the filter"
        )),
    }
}

/// One AMI's snapshots as AWS holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiSnapshots {
    /// The AMI.
    pub ami_id: String,
    /// Whether DescribeImages returned it.
    pub found: bool,
    /// Whether it is public.
    pub public: bool,
    /// Every EBS mapping's snapshot.
    pub snapshots: Vec<ActualSnapshot>,
}

/// One snapshot as AWS holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualSnapshot {
    /// The device.
    pub device: String,
    /// The snapshot.
    pub snapshot_id: String,
    /// Encrypted.
    pub encrypted: bool,
    /// The key, as DescribeSnapshots gives it.
    pub kms_key_id: Option<String>,
}

/// Whether an error is AWS's "not found" for the thing asked about, rather than a failure.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The AMI does not exist, or the filter matches nothing: the template's fault (exit 2).
    #[error("{0}")]
    NotFound(String),
    /// The call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

fn aws_error<E, R>(
    call: &'static str,
    permission: &'static str,
    region: &str,
    err: SdkError<E, R>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().unwrap_or_default().to_string();
    let (message, hint) = match &err {
        SdkError::ServiceError(_) => {
            let msg = format!("{code}: {}", err.message().unwrap_or_default());
            let denied = matches!(code.as_str(), "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException");
            let hint = if denied {
                format!(" (missing IAM permission {permission})")
            } else if code.contains("AuthFailure") || code.contains("InvalidClientTokenId") || code.contains("UnrecognizedClient") || code.contains("ExpiredToken") {
                " (check the AWS credentials: profile, environment or role)".to_string()
            } else {
                String::new()
            };
            (msg, hint)
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => (
            DisplayErrorContext(&err).to_string(),
            " (cannot reach the endpoint: check the network, custom_endpoint_ec2 or AWS_ENDPOINT_URL)".to_string(),
        ),
        _ => (DisplayErrorContext(&err).to_string(), " (check the AWS credentials and Region)".to_string()),
    };
    AwsError {
        call,
        region: region.to_string(),
        message,
        hint,
    }
}

/// Clients for every Region, from the standard AWS configuration (profiles, environment,
/// `AWS_ENDPOINT_URL`, …), with the builder's `custom_endpoint_ec2` for EC2 where it has one.
#[derive(Clone, Debug)]
pub struct Aws {
    sdk: SdkConfig,
}

impl Aws {
    /// Loads the standard configuration. Nothing secret is kept beyond the SDK's own.
    pub async fn load() -> Aws {
        Aws {
            sdk: aws_config::defaults(BehaviorVersion::latest()).load().await,
        }
    }

    /// The Region of the standard configuration (AWS_REGION, profile), if any.
    pub fn default_region(&self) -> Option<String> {
        self.sdk.region().map(|r| r.to_string())
    }

    fn ec2(&self, region: &str, endpoint: Option<&str>) -> aws_sdk_ec2::Client {
        let mut b =
            aws_sdk_ec2::config::Builder::from(&self.sdk).region(Region::new(region.to_string()));
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        aws_sdk_ec2::Client::from_conf(b.build())
    }

    fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        let b =
            aws_sdk_kms::config::Builder::from(&self.sdk).region(Region::new(region.to_string()));
        aws_sdk_kms::Client::from_conf(b.build())
    }

    /// The caller's account id (sts:GetCallerIdentity needs no permission).
    pub async fn account_id(&self, region: &str) -> Result<String, AwsError> {
        let b =
            aws_sdk_sts::config::Builder::from(&self.sdk).region(Region::new(region.to_string()));
        let out = aws_sdk_sts::Client::from_conf(b.build())
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_error("sts:GetCallerIdentity", "sts:GetCallerIdentity", region, e))?;
        Ok(out.account().unwrap_or_default().to_string())
    }

    /// EBS encryption by default and the default key of one Region (facts §1).
    pub async fn region_facts(
        &self,
        region: &str,
        endpoint: Option<&str>,
    ) -> Result<RegionFacts, AwsError> {
        let ec2 = self.ec2(region, endpoint);
        let (ebd, key) = tokio::join!(
            ec2.get_ebs_encryption_by_default().send(),
            ec2.get_ebs_default_kms_key_id().send()
        );
        let ebd = ebd.map_err(|e| {
            aws_error(
                "ec2:GetEbsEncryptionByDefault",
                "ec2:GetEbsEncryptionByDefault",
                region,
                e,
            )
        })?;
        let key = key.map_err(|e| {
            aws_error(
                "ec2:GetEbsDefaultKmsKeyId",
                "ec2:GetEbsDefaultKmsKeyId",
                region,
                e,
            )
        })?;
        let key_id = key
            .kms_key_id()
            .unwrap_or(crate::model::AWS_EBS_ALIAS)
            .to_string();
        let default_key = if is_aws_alias(&key_id) {
            KeyInfo::aws_ebs(self.aws_ebs_arn(region).await)
        } else {
            match self.describe_key(region, &key_id).await? {
                Some(k) => k,
                // A default key that no longer exists is not rejected up front (facts §1).
                None => KeyInfo {
                    arn: key_id,
                    manager: KeyManager::Customer,
                    enabled: false,
                },
            }
        };
        Ok(RegionFacts {
            ebd: ebd.ebs_encryption_by_default().unwrap_or(false),
            default_key,
        })
    }

    /// The ARN behind `alias/aws/ebs`, from ListAliases, which has no side effect (DescribeKey on
    /// the alias would create the key: facts §4). None when the key does not exist yet, or when
    /// kms:ListAliases is not allowed: the key is then named by its alias.
    async fn aws_ebs_arn(&self, region: &str) -> Option<String> {
        self.alias_names(region)
            .await
            .into_iter()
            .find(|(_, alias)| alias == crate::model::AWS_EBS_ALIAS)
            .map(|(arn, _)| arn)
    }

    /// DescribeKey in a Region; `None` when there is no such key there.
    pub async fn describe_key(
        &self,
        region: &str,
        key_ref: &str,
    ) -> Result<Option<KeyInfo>, AwsError> {
        if is_aws_alias(key_ref) {
            return Ok(Some(KeyInfo::aws_ebs(self.aws_ebs_arn(region).await)));
        }
        match self.kms(region).describe_key().key_id(key_ref).send().await {
            Ok(out) => Ok(out.key_metadata().map(|m| KeyInfo {
                arn: m.arn().unwrap_or(key_ref).to_string(),
                manager: match m.key_manager().map(|k| k.as_str()) {
                    Some("AWS") => KeyManager::Aws,
                    _ => KeyManager::Customer,
                },
                enabled: m.enabled() && m.key_state().is_none_or(|s| s.as_str() == "Enabled"),
            })),
            Err(e) if e.code() == Some("NotFoundException") => Ok(None),
            Err(e) => Err(aws_error("kms:DescribeKey", "kms:DescribeKey", region, e)),
        }
    }

    /// Every EBS snapshot behind each AMI, by batched DescribeImages and DescribeSnapshots.
    pub async fn ami_snapshots(
        &self,
        region: &str,
        endpoint: Option<&str>,
        amis: &[String],
    ) -> Result<Vec<AmiSnapshots>, AwsError> {
        const BATCH: usize = 500;
        let ec2 = self.ec2(region, endpoint);
        let mut images = Vec::new();
        for chunk in amis.chunks(BATCH) {
            let out = ec2
                .describe_images()
                .set_image_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("ec2:DescribeImages", "ec2:DescribeImages", region, e))?;
            images.extend(out.images().iter().cloned());
        }
        let snapshot_ids: Vec<String> = images
            .iter()
            .flat_map(|i| {
                i.block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs()?.snapshot_id().map(String::from))
            })
            .collect();
        let mut snapshots = BTreeMap::new();
        for chunk in snapshot_ids.chunks(BATCH) {
            let out = ec2
                .describe_snapshots()
                .set_snapshot_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| {
                    aws_error("ec2:DescribeSnapshots", "ec2:DescribeSnapshots", region, e)
                })?;
            for snap in out.snapshots() {
                snapshots.insert(
                    snap.snapshot_id().unwrap_or_default().to_string(),
                    snap.clone(),
                );
            }
        }
        Ok(amis
            .iter()
            .map(|id| {
                let image = images.iter().find(|i| i.image_id() == Some(id.as_str()));
                AmiSnapshots {
                    ami_id: id.clone(),
                    found: image.is_some(),
                    public: image.and_then(|i| i.public()).unwrap_or(false),
                    snapshots: image
                        .map(|i| i.block_device_mappings())
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|m| {
                            let sid = m.ebs()?.snapshot_id()?.to_string();
                            let snap = snapshots.get(&sid);
                            Some(ActualSnapshot {
                                device: m.device_name().unwrap_or_default().to_string(),
                                encrypted: snap
                                    .and_then(|s| s.encrypted())
                                    .or(m.ebs()?.encrypted())
                                    .unwrap_or(false),
                                kms_key_id: snap.and_then(|s| s.kms_key_id()).map(String::from),
                                snapshot_id: sid,
                            })
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// The accounts an AMI is shared with (DescribeImageAttribute launchPermission).
    pub async fn launch_permissions(
        &self,
        region: &str,
        endpoint: Option<&str>,
        ami: &str,
    ) -> Result<Vec<String>, AwsError> {
        let out = self
            .ec2(region, endpoint)
            .describe_image_attribute()
            .image_id(ami)
            .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "ec2:DescribeImageAttribute",
                    "ec2:DescribeImageAttribute",
                    region,
                    e,
                )
            })?;
        Ok(out
            .launch_permissions()
            .iter()
            .filter_map(|p| {
                p.user_id()
                    .map(String::from)
                    .or_else(|| p.group().map(|g| g.as_str().to_string()))
            })
            .collect())
    }

    /// Key ARN to alias name in a Region, for display; empty when kms:ListAliases is refused.
    pub async fn alias_names(&self, region: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut pages = self
            .kms(region)
            .list_aliases()
            .into_paginator()
            .items()
            .send();
        while let Some(Ok(alias)) = pages.next().await {
            if let (Some(name), Some(target), Some(arn)) =
                (alias.alias_name(), alias.target_key_id(), alias.alias_arn())
            {
                let key_arn = arn.replace(name, &format!("key/{target}"));
                out.insert(key_arn, name.to_string());
            }
        }
        out
    }

    /// The source AMI id: `source_ami`, or `source_ami_filter` resolved as Packer does (the most
    /// recent when asked, else exactly one image).
    pub async fn resolve_source(
        &self,
        region: &str,
        endpoint: Option<&str>,
        spec: &SourceSpec,
    ) -> Result<String, LookupError> {
        let SourceSpec::Filter {
            filters,
            owners,
            most_recent,
        } = spec
        else {
            let SourceSpec::Id(id) = spec else {
                unreachable!()
            };
            return Ok(id.clone());
        };
        let mut req = self
            .ec2(region, endpoint)
            .describe_images()
            .set_owners(Some(owners.clone()).filter(|o| !o.is_empty()));
        for (k, v) in filters {
            req = req.filters(Filter::builder().name(k).values(v).build());
        }
        let out = req
            .send()
            .await
            .map_err(|e| aws_error("ec2:DescribeImages", "ec2:DescribeImages", region, e))?;
        let images: Vec<(String, String)> = out
            .images()
            .iter()
            .map(|i| {
                (
                    i.image_id().unwrap_or_default().to_string(),
                    i.creation_date().unwrap_or_default().to_string(),
                )
            })
            .collect();
        pick_image(images, *most_recent)
            .map_err(|m| LookupError::NotFound(format!("source_ami_filter in {region}: {m}")))
    }

    /// The source AMI's EBS snapshots: encrypted, key, owned (facts §2 needs all three).
    /// Each comes with its owner's account id, so the caller can tell owned from shared.
    pub async fn source_snapshots(
        &self,
        region: &str,
        endpoint: Option<&str>,
        ami: &str,
    ) -> Result<Vec<(SourceSnapshot, Option<String>)>, LookupError> {
        let ec2 = self.ec2(region, endpoint);
        let images = match ec2.describe_images().image_ids(ami).send().await {
            Ok(out) => out.images().to_vec(),
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidAMIID")) => vec![],
            Err(e) => {
                return Err(
                    aws_error("ec2:DescribeImages", "ec2:DescribeImages", region, e).into(),
                );
            }
        };
        let Some(image) = images.first() else {
            return Err(LookupError::NotFound(format!(
                "the source AMI {ami} does not exist in {region} (or is not visible to this account)"
            )));
        };
        let mappings: Vec<(String, String, Option<bool>)> = image
            .block_device_mappings()
            .iter()
            .filter_map(|m| {
                let ebs = m.ebs()?;
                Some((
                    m.device_name().unwrap_or_default().to_string(),
                    ebs.snapshot_id()?.to_string(),
                    ebs.encrypted(),
                ))
            })
            .collect();
        let ids: Vec<String> = mappings.iter().map(|(_, s, _)| s.clone()).collect();
        let snapshots = if ids.is_empty() {
            vec![]
        } else {
            match ec2
                .describe_snapshots()
                .set_snapshot_ids(Some(ids))
                .send()
                .await
            {
                Ok(out) => out.snapshots().to_vec(),
                // Snapshots of another account's AMI are often not visible: the image's own
                // mapping still says whether they are encrypted.
                Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidSnapshot")) => vec![],
                Err(e) => {
                    return Err(aws_error(
                        "ec2:DescribeSnapshots",
                        "ec2:DescribeSnapshots",
                        region,
                        e,
                    )
                    .into());
                }
            }
        };
        let keys: BTreeMap<String, Option<KeyInfo>> = {
            let refs: Vec<String> = snapshots
                .iter()
                .filter_map(|s| s.kms_key_id().map(String::from))
                .collect();
            let mut out = BTreeMap::new();
            for r in refs {
                if let std::collections::btree_map::Entry::Vacant(slot) = out.entry(r) {
                    let info = self.describe_key(region, slot.key()).await?;
                    slot.insert(info);
                }
            }
            out
        };
        Ok(mappings
            .into_iter()
            .map(|(device, snapshot_id, image_says)| {
                let snap = snapshots
                    .iter()
                    .find(|s| s.snapshot_id() == Some(snapshot_id.as_str()));
                let encrypted = snap
                    .and_then(|s| s.encrypted())
                    .or(image_says)
                    .unwrap_or(false);
                let key = snap.and_then(|s| s.kms_key_id()).map(|k| {
                    keys.get(k).cloned().flatten().unwrap_or(KeyInfo {
                        arn: k.to_string(),
                        manager: KeyManager::Customer,
                        enabled: true,
                    })
                });
                let owner = snap.and_then(|s| s.owner_id()).map(String::from);
                (
                    SourceSnapshot {
                        device,
                        snapshot_id,
                        encrypted,
                        key,
                        owned: false,
                    },
                    owner,
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_picks_the_newest_whatever_the_listing_order() {
        let images = vec![
            (
                "ami-new".to_string(),
                "2026-11-02T00:00:00.000Z".to_string(),
            ),
            (
                "ami-old".to_string(),
                "2025-01-01T00:00:00.000Z".to_string(),
            ),
            (
                "ami-mid".to_string(),
                "2026-01-01T00:00:00.000Z".to_string(),
            ),
        ];
        assert_eq!(pick_image(images.clone(), true).unwrap(), "ami-new");
        assert!(
            pick_image(images, false)
                .unwrap_err()
                .contains("matches 3 images")
        );
        assert!(pick_image(vec![], true).unwrap_err().contains("no image"));
    }
}
