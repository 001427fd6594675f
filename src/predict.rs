//! The prediction core: given a build's settings and the account's facts, what encryption every
//! snapshot of the final AMI will have in every Region, and why. Pure: no I/O, no clock.
//!
//! It follows the order Packer's amazon-ebs builder works in (facts §5): launch the instance from
//! the source AMI (the RunInstances table, facts §2), CreateImage in the build Region, then, with
//! `encrypt_boot = true`, CopyImage into the build Region, and CopyImage into every other
//! `ami_regions` entry (facts §2, copying rules).

use serde::Serialize;

use crate::model::{
    Facts, KeyInfo, KeyManager, LaunchMapping, Settings, SourceSnapshot, is_aws_alias,
};

/// The encryption of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enc {
    /// Not encrypted.
    Unencrypted,
    /// Encrypted with this key.
    Encrypted(KeyInfo),
}

impl Enc {
    /// Whether the snapshot is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Enc::Encrypted(_))
    }

    /// The key, when encrypted.
    pub fn key(&self) -> Option<&KeyInfo> {
        match self {
            Enc::Encrypted(k) => Some(k),
            Enc::Unencrypted => None,
        }
    }
}

/// One device of the final AMI in one Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOutcome {
    /// The device name.
    pub device: String,
    /// Its snapshot's encryption.
    pub enc: Enc,
}

/// What one Region ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPrediction {
    /// The Region.
    pub region: String,
    /// The final AMI's devices, or why the build fails before it has one.
    pub outcome: Result<Vec<DeviceOutcome>, String>,
    /// Why, in words a user understands, in the order things happen.
    pub reasons: Vec<String>,
}

/// The summary of a Region's prediction used in reports (`predicted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PredictedSummary {
    /// Every snapshot encrypted.
    pub encrypted: bool,
    /// The key of the root (first) snapshot; null when unencrypted.
    pub kms_key_arn: Option<String>,
    /// Its manager; null when unencrypted.
    pub key_manager: Option<KeyManager>,
    /// Why the build fails in this Region, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl RegionPrediction {
    /// The report's `predicted` object.
    pub fn summary(&self) -> PredictedSummary {
        match &self.outcome {
            Err(why) => PredictedSummary {
                encrypted: false,
                kms_key_arn: None,
                key_manager: None,
                failure: Some(why.clone()),
            },
            Ok(devices) => {
                let first = devices.first().and_then(|d| d.enc.key());
                PredictedSummary {
                    encrypted: !devices.is_empty() && devices.iter().all(|d| d.enc.is_encrypted()),
                    kms_key_arn: first.map(|k| k.arn.clone()),
                    key_manager: first.map(|k| k.manager),
                    failure: None,
                }
            }
        }
    }
}

/// A key's name for humans: `aws/ebs` for the AWS managed key, else its ARN.
pub fn key_label(key: &KeyInfo) -> String {
    match key.manager {
        KeyManager::Aws => "the AWS managed key aws/ebs".to_string(),
        KeyManager::Customer => format!("the customer managed key {}", key.arn),
    }
}

struct Ctx<'a> {
    facts: &'a Facts,
}

impl Ctx<'_> {
    fn default_key(&self, region: &str) -> Result<KeyInfo, String> {
        self.facts
            .regions
            .get(region)
            .map(|r| r.default_key.clone())
            .ok_or_else(|| format!("no facts were read for {region}"))
    }

    fn ebd(&self, region: &str) -> bool {
        self.facts.regions.get(region).is_some_and(|r| r.ebd)
    }

    /// The key a reference names in `region`, usable for encryption.
    fn resolve(&self, region: &str, key_ref: &str) -> Result<KeyInfo, String> {
        if is_aws_alias(key_ref) {
            let default = self.default_key(region)?;
            return Ok(if default.is_aws_managed() {
                default
            } else {
                KeyInfo::aws_ebs(None)
            });
        }
        // A key already known by its ARN (a default key, or one amiguard injected) needs no
        // second look-up.
        let by_arn = || {
            self.facts
                .keys
                .values()
                .flatten()
                .chain(self.facts.regions.values().map(|r| &r.default_key))
                .find(|k| k.arn == key_ref && key_ref.contains(&format!(":{region}:")))
        };
        match self.facts.key(region, key_ref).or_else(by_arn) {
            Some(k) if k.enabled => Ok(k.clone()),
            Some(_) => Err(format!("the key {key_ref} is disabled in {region}")),
            None => Err(format!("the key {key_ref} does not exist in {region}")),
        }
    }
}

/// Predicts every Region's final AMI for one build.
pub fn predict(settings: &Settings, facts: &Facts) -> Vec<RegionPrediction> {
    let ctx = Ctx { facts };
    let r0 = settings.region.as_str();
    let mut launch_reasons = Vec::new();
    let launched = launch(&ctx, settings, &mut launch_reasons);
    let encrypt = settings.encrypt_boot == Some(true);

    let mut out = Vec::new();
    for region in settings.final_regions() {
        let mut reasons = launch_reasons.clone();
        let outcome = match &launched {
            Err(e) => Err(e.clone()),
            Ok(devices) if region == r0 && !encrypt => Ok(devices.clone()),
            Ok(devices) => {
                let key_ref = copy_key_ref(settings, &region);
                copy(
                    &ctx,
                    devices,
                    r0,
                    &region,
                    encrypt,
                    key_ref.as_deref(),
                    &mut reasons,
                )
            }
        };
        out.push(RegionPrediction {
            region,
            outcome,
            reasons,
        });
    }
    out
}

/// The KmsKeyId Packer passes when it copies into `region` (facts §5): `kms_key_id` for the
/// build Region unless `region_kms_key_ids` also names it (which wins); `region_kms_key_ids` for
/// the others; `""` means the Region's default key. Only with `encrypt_boot = true`.
fn copy_key_ref(settings: &Settings, region: &str) -> Option<String> {
    if settings.encrypt_boot != Some(true) {
        return None;
    }
    let from_map = settings.region_kms_key_ids.get(region).cloned();
    let chosen = if region == settings.region {
        from_map.or_else(|| settings.kms_key_id.clone())
    } else {
        from_map
    };
    chosen.filter(|k| !k.is_empty())
}

fn launch(
    ctx: &Ctx,
    s: &Settings,
    reasons: &mut Vec<String>,
) -> Result<Vec<DeviceOutcome>, String> {
    let r0 = s.region.as_str();
    let ebd = ctx.ebd(r0);
    let mut devices = Vec::new();
    for snap in &ctx.facts.source {
        let mapping = s.launch_mappings.iter().find(|m| m.device == snap.device);
        let enc = launch_volume(ctx, s, ebd, Some(snap), mapping, reasons)?;
        devices.push(DeviceOutcome {
            device: snap.device.clone(),
            enc,
        });
    }
    for m in &s.launch_mappings {
        if !ctx.facts.source.iter().any(|snap| snap.device == m.device) {
            let enc = launch_volume(ctx, s, ebd, None, Some(m), reasons)?;
            devices.push(DeviceOutcome {
                device: m.device.clone(),
                enc,
            });
        }
    }
    Ok(devices)
}

/// One volume at RunInstances: the "encryption outcomes" table (facts §2).
fn launch_volume(
    ctx: &Ctx,
    s: &Settings,
    ebd: bool,
    snap: Option<&SourceSnapshot>,
    mapping: Option<&LaunchMapping>,
    reasons: &mut Vec<String>,
) -> Result<Enc, String> {
    let r0 = s.region.as_str();
    let device = snap
        .map(|x| x.device.as_str())
        .or(mapping.map(|m| m.device.as_str()))
        .unwrap_or("?");
    let owned_key = snap
        .filter(|x| x.encrypted && x.owned)
        .and_then(|x| x.key.clone());
    if let Some(m) = mapping.filter(|m| m.encrypted == Some(true)) {
        if let Some(k) = &m.kms_key_id {
            let key = ctx
                .resolve(r0, k)
                .map_err(|e| format!("{e}: the instance cannot launch"))?;
            reasons.push(format!(
                "launch_block_device_mappings encrypts {device} at launch with {}",
                key_label(&key)
            ));
            return Ok(Enc::Encrypted(key));
        }
        let key = match owned_key {
            Some(k) => k,
            None => ctx.default_key(r0)?,
        };
        reasons.push(format!(
            "launch_block_device_mappings encrypts {device} at launch with {}",
            key_label(&key)
        ));
        return Ok(Enc::Encrypted(key));
    }
    if let Some(snap) = snap.filter(|x| x.encrypted) {
        let key = match (&snap.key, snap.owned) {
            (Some(k), true) => {
                reasons.push(format!(
                    "the source AMI {}'s snapshot {} is encrypted with {}: an encrypted snapshot never \
                     yields an unencrypted volume, and Packer cannot override it",
                    ctx.facts.source_ami,
                    snap.snapshot_id,
                    key_label(k)
                ));
                k.clone()
            }
            _ => {
                let k = ctx.default_key(r0)?;
                reasons.push(format!(
                    "the source AMI {}'s snapshot {} is encrypted and shared with this account: \
                     its volume is re-encrypted with {r0}'s default key, {}",
                    ctx.facts.source_ami,
                    snap.snapshot_id,
                    key_label(&k)
                ));
                k
            }
        };
        return Ok(Enc::Encrypted(key));
    }
    if ebd {
        let k = ctx.default_key(r0)?;
        let ignored = if s.encrypt_boot == Some(false) {
            " (encrypt_boot = false is ignored)"
        } else {
            ""
        };
        reasons.push(format!(
            "EBS encryption by default is on in {r0} with {}; Packer cannot override it{ignored}",
            key_label(&k)
        ));
        return Ok(Enc::Encrypted(k));
    }
    Ok(Enc::Unencrypted)
}

/// CopyImage of the build Region's first AMI into `to` (facts §2 copying, §5).
fn copy(
    ctx: &Ctx,
    devices: &[DeviceOutcome],
    from: &str,
    to: &str,
    encrypted: bool,
    key_ref: Option<&str>,
    reasons: &mut Vec<String>,
) -> Result<Vec<DeviceOutcome>, String> {
    let same_region = from == to;
    let key = match key_ref {
        Some(k) => Some(ctx.resolve(to, k).map_err(|e| {
            format!(
                "{e}: Packer's copy to {to} fails after the build (CopyImage ends in state failed)"
            )
        })?),
        None => None,
    };
    let ebd = ctx.ebd(to);
    let verb = if same_region {
        "copies the AMI in"
    } else {
        "copies the AMI to"
    };
    let mut out = Vec::new();
    for d in devices {
        let enc = if !(encrypted || ebd || d.enc.is_encrypted()) {
            Enc::Unencrypted
        } else if let Some(k) = &key {
            Enc::Encrypted(k.clone())
        } else if let (true, Some(k)) = (same_region, d.enc.key()) {
            Enc::Encrypted(k.clone())
        } else {
            Enc::Encrypted(ctx.default_key(to)?)
        };
        out.push(DeviceOutcome {
            device: d.device.clone(),
            enc,
        });
    }
    let summary = match (encrypted, &key, out.first().and_then(|d| d.enc.key())) {
        (true, Some(k), _) => format!(
            "encrypt_boot = true: Packer {verb} {to} encrypted with {}",
            key_label(k)
        ),
        (true, None, Some(k)) => format!(
            "encrypt_boot = true with no key for {to}: Packer {verb} {to} encrypted with {}",
            key_label(k)
        ),
        (false, _, Some(k)) if ebd && !devices.iter().any(|d| d.enc.is_encrypted()) => format!(
            "EBS encryption by default is on in {to}: Packer's copy to {to} is encrypted with {}",
            key_label(k)
        ),
        (false, _, Some(k)) => format!(
            "Packer copies the encrypted AMI to {to} without a key: it lands on {to}'s default key, {}",
            key_label(k)
        ),
        (_, _, None) => format!("Packer {verb} {to} unencrypted"),
    };
    reasons.push(summary);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sharing;
    use crate::model::fixtures::{R, R2, aws, cmk, facts};
    use std::collections::BTreeMap;

    fn settings(encrypt_boot: Option<bool>, kms: Option<&str>) -> Settings {
        Settings {
            region: R.into(),
            encrypt_boot,
            kms_key_id: kms.map(str::to_string),
            sharing: Sharing::default(),
            ..Settings::default()
        }
    }

    fn only(p: &[RegionPrediction], region: &str) -> Enc {
        let r = p.iter().find(|r| r.region == region).unwrap();
        let devices = r.outcome.as_ref().unwrap();
        assert_eq!(devices.len(), 1);
        devices[0].enc.clone()
    }

    /// The seed's table (facts §6), row by row.
    #[test]
    fn reproduces_every_row_of_the_seed_table() {
        let rows: Vec<(&str, Facts, Settings, Enc)> = vec![
            (
                "baseline",
                facts(&[(R, false)], None),
                settings(Some(false), None),
                Enc::Unencrypted,
            ),
            (
                "case 1",
                facts(&[(R, true)], None),
                settings(Some(false), None),
                Enc::Encrypted(aws(R)),
            ),
            (
                "case 2",
                facts(&[(R, false)], Some(aws(R))),
                settings(Some(false), None),
                Enc::Encrypted(aws(R)),
            ),
            (
                "case 3",
                facts(&[(R, true)], None),
                settings(Some(true), Some("alias/team")),
                Enc::Encrypted(cmk(R)),
            ),
        ];
        for (name, f, s, want) in rows {
            assert_eq!(only(&predict(&s, &f), R), want, "{name}");
        }
    }

    #[test]
    fn case1_reason_says_ebd_overrides_encrypt_boot_false() {
        let p = predict(&settings(Some(false), None), &facts(&[(R, true)], None));
        let reasons = p[0].reasons.join("\n");
        assert!(reasons.contains("EBS encryption by default is on in ap-northeast-1 with the AWS managed key aws/ebs; Packer cannot override it"), "{reasons}");
    }

    #[test]
    fn shared_encrypted_source_is_re_encrypted_with_the_default_key() {
        let mut f = facts(&[(R, false)], Some(cmk("elsewhere")));
        f.source[0].owned = false;
        assert_eq!(
            only(&predict(&settings(None, None), &f), R),
            Enc::Encrypted(aws(R))
        );
    }

    #[test]
    fn launch_mapping_with_key_encrypts_at_launch_without_a_copy() {
        let mut s = settings(None, None);
        s.launch_mappings.push(LaunchMapping {
            device: "/dev/xvda".into(),
            encrypted: Some(true),
            kms_key_id: Some("alias/team".into()),
        });
        let p = predict(&s, &facts(&[(R, true)], None));
        assert_eq!(only(&p, R), Enc::Encrypted(cmk(R)));
        assert!(!p[0].reasons.iter().any(|r| r.contains("copies")));
    }

    /// Section 5's Region-copy rules, one row per rule.
    #[test]
    fn region_copies_follow_packers_rules() {
        type Row = (
            &'static str,
            Vec<(&'static str, bool)>,
            Option<KeyInfo>,
            Option<bool>,
            BTreeMap<String, String>,
            Enc,
        );
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let rows: Vec<Row> = vec![
            (
                "unencrypted stays unencrypted without encrypt_boot",
                vec![(R, false), (R2, false)],
                None,
                None,
                map(&[]),
                Enc::Unencrypted,
            ),
            (
                "EBD on in the destination encrypts the copy",
                vec![(R, false), (R2, true)],
                None,
                None,
                map(&[]),
                Enc::Encrypted(aws(R2)),
            ),
            (
                "an encrypted AMI lands on the destination's default key",
                vec![(R, false), (R2, false)],
                Some(cmk(R)),
                Some(false),
                map(&[]),
                Enc::Encrypted(aws(R2)),
            ),
            (
                "encrypt_boot without region_kms_key_ids: destination default key",
                vec![(R, false), (R2, false)],
                None,
                Some(true),
                map(&[]),
                Enc::Encrypted(aws(R2)),
            ),
            (
                "region_kms_key_ids names the destination's key",
                vec![(R, false), (R2, false)],
                None,
                Some(true),
                map(&[(R2, "alias/team")]),
                Enc::Encrypted(cmk(R2)),
            ),
            (
                "\"\" in region_kms_key_ids is the default key",
                vec![(R, false), (R2, false)],
                None,
                Some(true),
                map(&[(R2, "")]),
                Enc::Encrypted(aws(R2)),
            ),
        ];
        for (name, ebd, source, encrypt_boot, rk, want) in rows {
            let mut s = settings(encrypt_boot, None);
            s.ami_regions = vec![R2.into()];
            s.region_kms_key_ids = rk;
            assert_eq!(only(&predict(&s, &facts(&ebd, source)), R2), want, "{name}");
        }
    }

    #[test]
    fn region_kms_key_ids_wins_over_kms_key_id_for_the_build_region() {
        let mut f = facts(&[(R, false)], None);
        let other = KeyInfo {
            arn: "arn:aws:kms:ap-northeast-1:111:key/other".into(),
            manager: KeyManager::Customer,
            enabled: true,
        };
        f.keys
            .insert((R.into(), "alias/other".into()), Some(other.clone()));
        let mut s = settings(Some(true), Some("alias/team"));
        s.ami_regions = vec![R.into()];
        s.region_kms_key_ids.insert(R.into(), "alias/other".into());
        assert_eq!(only(&predict(&s, &f), R), Enc::Encrypted(other));
    }

    #[test]
    fn a_key_missing_in_a_destination_region_fails_that_copy() {
        let mut f = facts(&[(R, false), (R2, false)], None);
        f.keys.insert((R2.into(), "alias/team".into()), None);
        let mut s = settings(Some(true), Some("alias/team"));
        s.ami_regions = vec![R2.into()];
        s.region_kms_key_ids.insert(R2.into(), "alias/team".into());
        let p = predict(&s, &f);
        assert_eq!(only(&p, R), Enc::Encrypted(cmk(R)));
        let err = p[1].outcome.clone().unwrap_err();
        assert!(err.contains("does not exist in us-east-1"), "{err}");
    }

    #[test]
    fn a_disabled_key_fails_the_copy() {
        let mut f = facts(&[(R, false)], None);
        f.keys.insert(
            (R.into(), "alias/team".into()),
            Some(KeyInfo {
                enabled: false,
                ..cmk(R)
            }),
        );
        let p = predict(&settings(Some(true), Some("alias/team")), &f);
        assert!(p[0].outcome.clone().unwrap_err().contains("disabled"));
    }

    #[test]
    fn encrypt_boot_copy_in_the_build_region_keeps_an_owned_key_without_kms_key_id() {
        let p = predict(
            &settings(Some(true), None),
            &facts(&[(R, false)], Some(cmk(R))),
        );
        assert_eq!(only(&p, R), Enc::Encrypted(cmk(R)));
    }
}
