//! Proof after the fact: every snapshot of every AMI, in every Region, read back from AWS and
//! held against the intent. Batched Describe calls, Regions in parallel, each key described once.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use serde::Serialize;

use crate::aws::{AmiSnapshots, Aws, AwsError};
use crate::intent::{Intent, KeySpec};
use crate::model::{KeyInfo, KeyManager};
use crate::predict::PredictedSummary;

/// One AMI to check.
#[derive(Debug, Clone)]
pub struct Target {
    /// The build it came from (or `verify` for AMIs named on the command line).
    pub build: String,
    /// Its Region.
    pub region: String,
    /// The AMI.
    pub ami: String,
    /// `custom_endpoint_ec2` of its build.
    pub endpoint: Option<String>,
    /// The intent it must meet (already concrete: not `auto`).
    pub intent: Intent,
    /// Accounts it must be shared with (`ami_users`).
    pub share_with: Vec<String>,
    /// What the plan predicted, to tell drift from a gap in the rules.
    pub predicted: Option<PredictedSummary>,
}

/// One snapshot, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotReport {
    /// The snapshot.
    pub snapshot_id: String,
    /// Its device.
    pub device: String,
    /// Encrypted.
    pub encrypted: bool,
    /// Its key's ARN.
    pub kms_key_arn: Option<String>,
    /// Its key's manager.
    pub key_manager: Option<KeyManager>,
    /// Its key's alias, where it has one.
    pub key_alias: Option<String>,
}

/// An AMI as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actual {
    /// The AMI.
    pub ami_id: String,
    /// Every EBS snapshot.
    pub snapshots: Vec<SnapshotReport>,
    /// Whether it is public.
    pub public: bool,
    /// The accounts it is shared with, where that was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<Vec<String>>,
}

/// The verdict on one AMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// It meets the intent.
    Verified,
    /// It does not.
    Violated,
}

/// One target, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The target.
    pub target: Target,
    /// What AWS holds.
    pub actual: Actual,
    /// The verdict.
    pub verdict: Check,
    /// Why it is violated.
    pub violations: Vec<String>,
    /// Where it differs from the prediction.
    pub drift: Option<String>,
}

/// Reads and checks every target.
pub async fn verify(
    aws: &Aws,
    keys: &KeySpec,
    targets: Vec<Target>,
) -> Result<Vec<Checked>, AwsError> {
    let mut groups: BTreeMap<(Option<String>, String), Vec<String>> = BTreeMap::new();
    for t in &targets {
        let amis = groups
            .entry((t.endpoint.clone(), t.region.clone()))
            .or_default();
        if !amis.contains(&t.ami) {
            amis.push(t.ami.clone());
        }
    }
    let reads = join_all(groups.iter().map(|((endpoint, region), amis)| async move {
        let (snaps, aliases) = tokio::join!(
            aws.ami_snapshots(region, endpoint.as_deref(), amis),
            aws.alias_names(region)
        );
        snaps.map(|s| (region.clone(), s, aliases))
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;

    let mut found: BTreeMap<(String, String), AmiSnapshots> = BTreeMap::new();
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    let mut key_refs: BTreeSet<(String, String)> = BTreeSet::new();
    for (region, amis, names) in reads {
        aliases.extend(names);
        for a in amis {
            for s in &a.snapshots {
                if let Some(k) = &s.kms_key_id {
                    key_refs.insert((region.clone(), k.clone()));
                }
            }
            found.insert((region.clone(), a.ami_id.clone()), a);
        }
    }
    for t in &targets {
        if let Some(k) = keys
            .for_region(&t.region)
            .filter(|_| t.intent == Intent::Cmk)
        {
            key_refs.insert((t.region.clone(), k.to_string()));
        }
    }
    let described: BTreeMap<(String, String), Option<KeyInfo>> =
        join_all(key_refs.iter().map(|(r, k)| async move {
            aws.describe_key(r, k)
                .await
                .map(|info| ((r.clone(), k.clone()), info))
        }))
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let shared: Vec<Option<Vec<String>>> = join_all(targets.iter().map(|t| async move {
        if t.share_with.is_empty() {
            Ok(None)
        } else {
            aws.launch_permissions(&t.region, t.endpoint.as_deref(), &t.ami)
                .await
                .map(Some)
        }
    }))
    .await
    .into_iter()
    .collect::<Result<_, _>>()?;

    Ok(targets
        .into_iter()
        .zip(shared)
        .map(|(t, shared_with)| {
            let a = found.get(&(t.region.clone(), t.ami.clone()));
            let snapshots: Vec<SnapshotReport> = a
                .map(|a| a.snapshots.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    let info = s.kms_key_id.as_ref().and_then(|k| {
                        described
                            .get(&(t.region.clone(), k.clone()))
                            .cloned()
                            .flatten()
                    });
                    let arn = info
                        .as_ref()
                        .map(|i| i.arn.clone())
                        .or(s.kms_key_id.clone());
                    SnapshotReport {
                        snapshot_id: s.snapshot_id.clone(),
                        device: s.device.clone(),
                        encrypted: s.encrypted,
                        key_alias: arn.as_ref().and_then(|a| aliases.get(a).cloned()),
                        key_manager: info.map(|i| i.manager),
                        kms_key_arn: arn,
                    }
                })
                .collect();
            let actual = Actual {
                ami_id: t.ami.clone(),
                snapshots,
                public: a.is_some_and(|a| a.public),
                shared_with,
            };
            let wanted = keys.for_region(&t.region).and_then(|k| {
                described
                    .get(&(t.region.clone(), k.to_string()))
                    .cloned()
                    .flatten()
            });
            let mut violations = if a.is_some_and(|a| a.found) {
                check(t.intent, wanted.as_ref(), &actual)
            } else {
                vec![format!("{} was not found in {}", t.ami, t.region)]
            };
            if let Some(with) = &actual.shared_with {
                for user in t.share_with.iter().filter(|u| !with.contains(u)) {
                    violations.push(format!("{} is not shared with {user} (ami_users)", t.ami));
                }
            }
            let drift = t.predicted.as_ref().and_then(|p| drift(p, &actual));
            let verdict = if violations.is_empty() {
                Check::Verified
            } else {
                Check::Violated
            };
            Checked {
                target: t,
                actual,
                verdict,
                violations,
                drift,
            }
        })
        .collect())
}

/// Why an AMI's snapshots do not meet the intent. Pure.
pub fn check(intent: Intent, wanted: Option<&KeyInfo>, actual: &Actual) -> Vec<String> {
    let mut out = Vec::new();
    if actual.snapshots.is_empty() {
        out.push(format!("{} has no EBS snapshot to check", actual.ami_id));
    }
    for s in &actual.snapshots {
        let key = s
            .key_alias
            .clone()
            .or(s.kms_key_arn.clone())
            .unwrap_or_default();
        let bad = match intent {
            Intent::Unencrypted if s.encrypted => Some(format!("is encrypted with {key}")),
            Intent::Encrypted | Intent::Cmk if !s.encrypted => Some("is unencrypted".to_string()),
            Intent::Shareable if s.encrypted && actual.public => {
                Some("is encrypted, and the AMI is public".to_string())
            }
            Intent::Shareable if s.encrypted && s.key_manager != Some(KeyManager::Customer) => {
                Some(format!(
                    "is on the AWS managed key {key}, which cannot be shared"
                ))
            }
            Intent::Cmk => match wanted {
                Some(w) if s.kms_key_arn.as_deref() != Some(w.arn.as_str()) => {
                    Some(format!("is encrypted with {key}, not {}", w.arn))
                }
                None => Some(
                    "cannot be checked: the intent's key does not exist in this Region".to_string(),
                ),
                _ => None,
            },
            _ => None,
        };
        if let Some(b) = bad {
            out.push(format!("{} ({}) {b}", s.snapshot_id, s.device));
        }
    }
    out
}

/// How the actual root snapshot differs from the prediction, if it does.
pub fn drift(p: &PredictedSummary, a: &Actual) -> Option<String> {
    let root = a.snapshots.first()?;
    let key_differs = match (&p.kms_key_arn, &root.kms_key_arn) {
        (Some(pk), Some(ak)) if pk == crate::model::AWS_EBS_ALIAS => {
            root.key_manager != Some(KeyManager::Aws) && ak != pk
        }
        (pk, ak) => pk != ak,
    };
    if p.failure.is_none() && (p.encrypted != root.encrypted || key_differs) {
        Some(format!(
            "predicted {} but found {}: either the account changed during the build, or amiguard's rules missed a case (please report it)",
            p.kms_key_arn.as_deref().unwrap_or("unencrypted"),
            root.kms_key_arn.as_deref().unwrap_or("unencrypted")
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(encrypted: bool, arn: Option<&str>, manager: Option<KeyManager>) -> SnapshotReport {
        SnapshotReport {
            snapshot_id: "snap-1".into(),
            device: "/dev/xvda".into(),
            encrypted,
            kms_key_arn: arn.map(String::from),
            key_manager: manager,
            key_alias: None,
        }
    }

    fn ami(s: SnapshotReport) -> Actual {
        Actual {
            ami_id: "ami-1".into(),
            snapshots: vec![s],
            public: false,
            shared_with: None,
        }
    }

    #[test]
    fn each_intent_flags_what_it_forbids() {
        let aws = ami(snap(true, Some("arn:aws"), Some(KeyManager::Aws)));
        let cmk = ami(snap(true, Some("arn:cmk"), Some(KeyManager::Customer)));
        let plain = ami(snap(false, None, None));
        let want = KeyInfo {
            arn: "arn:cmk".into(),
            manager: KeyManager::Customer,
            enabled: true,
        };
        assert!(check(Intent::Shareable, None, &aws)[0].contains("AWS managed key"));
        assert!(check(Intent::Shareable, None, &cmk).is_empty());
        assert!(check(Intent::Unencrypted, None, &cmk)[0].contains("is encrypted"));
        assert!(check(Intent::Unencrypted, None, &plain).is_empty());
        assert!(check(Intent::Encrypted, None, &plain)[0].contains("unencrypted"));
        assert!(check(Intent::Cmk, Some(&want), &cmk).is_empty());
        assert!(check(Intent::Cmk, Some(&want), &aws)[0].contains("not arn:cmk"));
        assert!(check(Intent::Any, None, &aws).is_empty());
    }

    #[test]
    fn drift_is_reported_only_when_the_result_differs() {
        let p = PredictedSummary {
            encrypted: true,
            kms_key_arn: Some("arn:cmk".into()),
            key_manager: Some(KeyManager::Customer),
            failure: None,
        };
        assert!(
            drift(
                &p,
                &ami(snap(true, Some("arn:cmk"), Some(KeyManager::Customer)))
            )
            .is_none()
        );
        assert!(drift(&p, &ami(snap(true, Some("arn:aws"), Some(KeyManager::Aws)))).is_some());
    }
}
