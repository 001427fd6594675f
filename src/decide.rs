//! From a prediction and an intent to a decision: the prediction meets the intent; or this exact
//! template change makes it meet it; or nothing in the template can, and why, and what to do.
//! Pure, like the prediction it builds on.
//!
//! An explicit value in the user's template is never overwritten: where it stands in the way, the
//! plan refuses and names it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::intent::{Intent, KeySpec};
use crate::model::{Facts, KeyInfo, KeyManager, Settings, is_aws_alias};
use crate::predict::{Enc, RegionPrediction, key_label, predict};

/// One attribute amiguard adds to the build's template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The amazon-ebs attribute.
    pub attribute: String,
    /// Its value (bool, string or object of strings).
    pub value: serde_json::Value,
    /// Why it is needed.
    pub why: String,
}

/// One reason the plan refuses (or, under intent `any`, a warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A stable code: `ebd_on`, `encrypted_source`, `aws_managed_key`, `no_key_for_region`,
    /// `key_missing`, `contradiction`, `public_encrypted`, `build_fails`, `not_met`, `unknown_value`.
    pub code: &'static str,
    /// What is wrong, with the Region.
    pub message: String,
    /// What the user can do about it.
    pub fix: String,
}

/// The decision for one build.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The intent applied (`auto` resolved).
    pub intent: Intent,
    /// Attributes to inject (empty when the prediction already meets the intent or when refused).
    pub changes: Vec<Change>,
    /// Why the plan refuses; empty when it does not.
    pub problems: Vec<Problem>,
    /// The prediction as the build will run: with the changes, when there are any.
    pub prediction: Vec<RegionPrediction>,
}

impl Decision {
    /// Whether the plan refuses this build.
    pub fn refused(&self) -> bool {
        !self.problems.is_empty() && self.intent != Intent::Any
    }
}

/// Where each attribute of the build was set, as `file:line`, for messages.
pub type Origins = BTreeMap<String, String>;

fn at(origins: &Origins, attr: &str) -> String {
    origins
        .get(attr)
        .map(|o| format!(" ({o})"))
        .unwrap_or_default()
}

/// `auto` made concrete for this build (README, "Intents").
pub fn effective_intent(intent: Intent, s: &Settings) -> Intent {
    match intent {
        Intent::Auto if s.sharing.public => Intent::Unencrypted,
        Intent::Auto if s.sharing.with_accounts => Intent::Shareable,
        Intent::Auto => Intent::Any,
        other => other,
    }
}

/// Decides one build.
pub fn decide(
    intent: Intent,
    keys: &KeySpec,
    s: &Settings,
    facts: &Facts,
    origins: &Origins,
) -> Decision {
    let intent = effective_intent(intent, s);
    let prediction = predict(s, facts);
    let problems = violations(intent, keys, s, facts, &prediction);
    if problems.is_empty() || intent == Intent::Any {
        return Decision {
            intent,
            changes: vec![],
            problems,
            prediction,
        };
    }
    let wants_unencrypted =
        intent == Intent::Unencrypted || (intent == Intent::Shareable && s.sharing.public);
    let attempt = if wants_unencrypted {
        Err(why_encrypted(s, facts, &prediction, origins))
    } else {
        changes_for(intent, keys, s, facts, origins)
    };
    match attempt {
        Err(problems) => Decision {
            intent,
            changes: vec![],
            problems,
            prediction,
        },
        Ok(changes) => {
            let mut changed = s.clone();
            apply(&mut changed, &changes);
            let after = predict(&changed, facts);
            let left = violations(intent, keys, &changed, facts, &after);
            if left.is_empty() {
                Decision {
                    intent,
                    changes,
                    problems: vec![],
                    prediction: after,
                }
            } else {
                let problems = left
                    .into_iter()
                    .map(|p| Problem {
                        code: "not_met",
                        message: format!("even with amiguard's change, {}", p.message),
                        fix: p.fix,
                    })
                    .collect();
                Decision {
                    intent,
                    changes: vec![],
                    problems,
                    prediction,
                }
            }
        }
    }
}

/// Applies injected attributes to settings, as Packer will read them.
pub fn apply(s: &mut Settings, changes: &[Change]) {
    for c in changes {
        match (c.attribute.as_str(), &c.value) {
            ("encrypt_boot", serde_json::Value::Bool(b)) => s.encrypt_boot = Some(*b),
            ("kms_key_id", serde_json::Value::String(k)) => s.kms_key_id = Some(k.clone()),
            ("region_kms_key_ids", serde_json::Value::Object(m)) => {
                s.region_kms_key_ids = m
                    .iter()
                    .map(|(r, k)| (r.clone(), k.as_str().unwrap_or_default().to_string()))
                    .collect();
            }
            _ => {}
        }
    }
}

/// The key the intent wants in a Region: `None` where any key will do.
fn wanted_key<'a>(
    intent: Intent,
    keys: &KeySpec,
    facts: &'a Facts,
    region: &str,
) -> Result<Option<&'a KeyInfo>, Problem> {
    let named = keys.for_region(region);
    match (intent, named) {
        (Intent::Cmk, None) => Err(Problem {
            code: "no_key_for_region",
            message: format!("intent cmk names no key for {region}"),
            fix: format!("--kms-key {region}=KEY (or --kms-key KEY for every Region)"),
        }),
        (Intent::Cmk | Intent::Shareable, Some(k)) => match facts.key(region, k) {
            Some(info) if !info.enabled => Err(Problem {
                code: "key_missing",
                message: format!("the key {k} is disabled in {region}"),
                fix: format!(
                    "aws kms enable-key --key-id {k} --region {region}, or name another key with --kms-key {region}=KEY"
                ),
            }),
            Some(info) if info.manager == KeyManager::Aws => Err(Problem {
                code: "aws_managed_key",
                message: format!("the key {k} is AWS managed: AMIs on it cannot be shared"),
                fix: format!("name a customer managed key with --kms-key {region}=KEY"),
            }),
            Some(info) => Ok(Some(info)),
            None => Err(Problem {
                code: "key_missing",
                message: format!("the key {k} does not exist in {region}"),
                fix: format!(
                    "create it in {region} (keys are regional; a multi-Region key needs a replica there), or name one that exists with --kms-key {region}=KEY"
                ),
            }),
        },
        _ => Ok(None),
    }
}

fn violations(
    intent: Intent,
    keys: &KeySpec,
    s: &Settings,
    facts: &Facts,
    prediction: &[RegionPrediction],
) -> Vec<Problem> {
    let mut out = Vec::new();
    for p in prediction {
        let r = &p.region;
        let devices = match &p.outcome {
            Err(why) => {
                out.push(Problem {
                    code: "build_fails",
                    message: format!("the build fails in {r}: {why}"),
                    fix: "fix the key named in the template, or create it in that Region".into(),
                });
                continue;
            }
            Ok(d) => d,
        };
        let want = match wanted_key(intent, keys, facts, r) {
            Ok(w) => w,
            Err(problem) => {
                out.push(problem);
                continue;
            }
        };
        for d in devices {
            let bad = match (intent, &d.enc) {
                (Intent::Unencrypted, Enc::Encrypted(k)) => {
                    Some(format!("encrypted with {}", key_label(k)))
                }
                (Intent::Encrypted | Intent::Cmk, Enc::Unencrypted) => {
                    Some("unencrypted".to_string())
                }
                (Intent::Shareable, Enc::Encrypted(_)) if s.sharing.public => {
                    Some("encrypted, and only unencrypted AMIs can be made public".to_string())
                }
                (Intent::Shareable, Enc::Encrypted(k)) if k.is_aws_managed() => Some(format!(
                    "on {}: AWS refuses to share it (\"Snapshots encrypted with the AWS Managed CMK can't be shared\")",
                    key_label(k)
                )),
                (Intent::Cmk, Enc::Encrypted(k)) => match want {
                    Some(w) if w.arn != k.arn => {
                        Some(format!("encrypted with {}, not {}", key_label(k), w.arn))
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some(what) = bad {
                out.push(Problem {
                    code: "not_met",
                    message: format!("in {r}, {} would be {what}", d.device),
                    fix: String::new(),
                });
            }
        }
    }
    out
}

/// Why a build that must stay unencrypted cannot: each cause with its fix.
fn why_encrypted(
    s: &Settings,
    facts: &Facts,
    prediction: &[RegionPrediction],
    origins: &Origins,
) -> Vec<Problem> {
    let mut out = Vec::new();
    if s.sharing.public {
        out.push(Problem {
            code: "public_encrypted",
            message: "the build makes its AMI public (ami_groups/snapshot_groups \"all\"), and only unencrypted AMIs can be made public".into(),
            fix: "keep the AMI unencrypted (the causes below), or share it with accounts instead of making it public".into(),
        });
    }
    if s.encrypt_boot == Some(true) {
        out.push(Problem {
            code: "contradiction",
            message: format!(
                "encrypt_boot = true{} encrypts the AMI",
                at(origins, "encrypt_boot")
            ),
            fix: "remove encrypt_boot = true (or set it to false)".into(),
        });
    }
    if s.launch_mappings.iter().any(|m| m.encrypted == Some(true)) {
        out.push(Problem {
            code: "contradiction",
            message: format!(
                "launch_block_device_mappings{} encrypts a volume at launch",
                at(origins, "launch_block_device_mappings")
            ),
            fix: "remove encrypted = true from launch_block_device_mappings".into(),
        });
    }
    if let Some(snap) = facts.source.iter().find(|x| x.encrypted) {
        out.push(Problem {
            code: "encrypted_source",
            message: format!(
                "the source AMI {}{} has encrypted snapshot {}: an encrypted snapshot never yields an unencrypted volume",
                facts.source_ami,
                at(origins, "source_ami"),
                snap.snapshot_id
            ),
            fix: "build from an unencrypted source AMI".into(),
        });
    }
    for p in prediction {
        let r = &p.region;
        if let Some(rf) = facts.regions.get(r).filter(|rf| rf.ebd) {
            out.push(Problem {
                code: "ebd_on",
                message: format!(
                    "EBS encryption by default is on in {r} (with {}): every volume and copy there is encrypted, whatever the template says",
                    key_label(&rf.default_key)
                ),
                fix: format!(
                    "aws ec2 disable-ebs-encryption-by-default --region {r} (affects the whole account in {r}), or build in a Region where it is off"
                ),
            });
        }
    }
    if out.is_empty() || (out.len() == 1 && s.sharing.public) {
        out.push(Problem {
            code: "not_met",
            message: "the AMI would be encrypted".into(),
            fix: String::new(),
        });
    }
    out
}

/// The smallest set of attributes that makes the build encrypted with acceptable keys.
fn changes_for(
    intent: Intent,
    keys: &KeySpec,
    s: &Settings,
    facts: &Facts,
    origins: &Origins,
) -> Result<Vec<Change>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut changes = Vec::new();
    let r0 = s.region.clone();
    let regions = s.final_regions();

    // The key every Region must end on. `encrypted` takes any key; `shareable` a customer
    // managed one (the one named, else the Region's default if that is customer managed);
    // `cmk` exactly the one named.
    let mut target: BTreeMap<String, Option<KeyInfo>> = BTreeMap::new();
    for r in &regions {
        match wanted_key(intent, keys, facts, r) {
            Err(p) => problems.push(p),
            Ok(Some(k)) => {
                target.insert(r.clone(), Some(k.clone()));
            }
            Ok(None) if intent == Intent::Shareable => match facts.regions.get(r) {
                Some(rf) if rf.default_key.manager == KeyManager::Customer => {
                    target.insert(r.clone(), Some(rf.default_key.clone()));
                }
                _ => problems.push(Problem {
                    code: "aws_managed_key",
                    message: format!(
                        "in {r} the AMI would be encrypted and the only key available is the AWS managed key aws/ebs, which AWS refuses to share"
                    ),
                    fix: format!(
                        "give a customer managed key: --kms-key KEY (or --kms-key {r}=KEY), or make one {r}'s default: aws ec2 modify-ebs-default-kms-key-id --kms-key-id KEY --region {r}"
                    ),
                }),
            },
            Ok(None) => {
                target.insert(r.clone(), None);
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    match s.encrypt_boot {
        Some(true) => {}
        Some(false) => problems.push(Problem {
            code: "contradiction",
            message: format!(
                "encrypt_boot = false{} contradicts intent {intent}: the AMI must be re-encrypted, which takes encrypt_boot = true",
                at(origins, "encrypt_boot")
            ),
            fix: "remove encrypt_boot = false (amiguard then sets it), or set it to true".into(),
        }),
        None => changes.push(Change {
            attribute: "encrypt_boot".into(),
            value: true.into(),
            why: format!("intent {intent}: Packer encrypts the AMI only with encrypt_boot = true"),
        }),
    }

    // The build Region's key: kms_key_id, unless region_kms_key_ids also names it (facts §5).
    let r0_in_map = s.ami_regions.contains(&r0);
    if let Some(Some(k0)) = target.get(&r0)
        && !r0_in_map
    {
        match &s.kms_key_id {
            None => changes.push(Change {
                attribute: "kms_key_id".into(),
                value: k0.arn.clone().into(),
                why: format!(
                    "intent {intent}: the AMI in {r0} must be on {}",
                    key_label(k0)
                ),
            }),
            Some(user) if resolves_to(facts, &r0, user, k0) => {}
            Some(user) => problems.push(Problem {
                code: "contradiction",
                message: format!(
                    "kms_key_id = {user:?}{} is not the key intent {intent} needs in {r0} ({})",
                    at(origins, "kms_key_id"),
                    k0.arn
                ),
                fix: format!("set kms_key_id = \"{}\", or remove it", k0.arn),
            }),
        }
    }

    // Every ami_regions entry: region_kms_key_ids must list exactly those (facts §5).
    let needs_map = target
        .iter()
        .any(|(r, k)| k.is_some() && (r != &r0 || r0_in_map));
    if needs_map {
        let mut map = serde_json::Map::new();
        let user_has_map = !s.region_kms_key_ids.is_empty();
        for r in &s.ami_regions {
            let want = target.get(r).cloned().flatten();
            match (s.region_kms_key_ids.get(r), &want) {
                (Some(user), Some(k)) if resolves_to(facts, r, user, k) => {}
                (Some(user), Some(k)) => problems.push(Problem {
                    code: "contradiction",
                    message: format!(
                        "region_kms_key_ids{} gives {r} the key {user:?}, not the key intent {intent} needs ({})",
                        at(origins, "region_kms_key_ids"),
                        k.arn
                    ),
                    fix: format!("set {r} = \"{}\" in region_kms_key_ids", k.arn),
                }),
                (Some(_), None) => {}
                (None, _) if user_has_map => problems.push(Problem {
                    code: "contradiction",
                    message: format!(
                        "region_kms_key_ids{} has no entry for {r}, which ami_regions lists",
                        at(origins, "region_kms_key_ids")
                    ),
                    fix: format!(
                        "add {r} = \"{}\" to region_kms_key_ids",
                        want.as_ref().map(|k| k.arn.as_str()).unwrap_or("")
                    ),
                }),
                (None, _) => {
                    map.insert(r.clone(), want.map(|k| k.arn).unwrap_or_default().into());
                }
            }
        }
        if !map.is_empty() {
            changes.push(Change {
                attribute: "region_kms_key_ids".into(),
                value: serde_json::Value::Object(map),
                why: format!("intent {intent}: each copy in ami_regions must be on the right key (\"\" is that Region's default)"),
            });
        }
    }
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(problems)
    }
}

/// Whether the user's key reference names the same key as `want` in `region`.
fn resolves_to(facts: &Facts, region: &str, user: &str, want: &KeyInfo) -> bool {
    if user == want.arn {
        return true;
    }
    if is_aws_alias(user) {
        return want.is_aws_managed();
    }
    facts.key(region, user).is_some_and(|k| k.arn == want.arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sharing;
    use crate::model::fixtures::{R, R2, aws, cmk, facts};

    fn build(encrypt_boot: Option<bool>, shared: bool) -> Settings {
        Settings {
            region: R.into(),
            encrypt_boot,
            sharing: Sharing {
                with_accounts: shared,
                public: false,
            },
            ..Settings::default()
        }
    }

    fn team() -> KeySpec {
        KeySpec {
            global: Some("alias/team".into()),
            ..KeySpec::default()
        }
    }

    fn origins() -> Origins {
        [("encrypt_boot".to_string(), "t.json:7".to_string())].into()
    }

    fn codes(d: &Decision) -> Vec<&str> {
        d.problems.iter().map(|p| p.code).collect()
    }

    #[test]
    fn refuses_shared_ami_on_the_aws_managed_key_with_no_key_given() {
        let d = decide(
            Intent::Auto,
            &KeySpec::default(),
            &build(Some(false), true),
            &facts(&[(R, true)], None),
            &origins(),
        );
        assert_eq!(d.intent, Intent::Shareable);
        assert!(d.refused());
        assert!(codes(&d).contains(&"aws_managed_key"), "{:?}", d.problems);
        assert!(d.problems.iter().any(
            |p| p.fix.contains("--kms-key") && p.fix.contains("modify-ebs-default-kms-key-id")
        ));
    }

    #[test]
    fn injects_encrypt_boot_and_key_for_a_shared_ami_when_a_key_is_given() {
        let d = decide(
            Intent::Auto,
            &team(),
            &build(None, true),
            &facts(&[(R, true)], None),
            &origins(),
        );
        assert!(!d.refused(), "{:?}", d.problems);
        let attrs: Vec<(&str, &serde_json::Value)> = d
            .changes
            .iter()
            .map(|c| (c.attribute.as_str(), &c.value))
            .collect();
        assert_eq!(
            attrs,
            vec![
                ("encrypt_boot", &true.into()),
                ("kms_key_id", &cmk(R).arn.into())
            ]
        );
        assert_eq!(d.prediction[0].summary().kms_key_arn, Some(cmk(R).arn));
    }

    #[test]
    fn shareable_uses_a_customer_managed_default_key_without_a_flag() {
        let mut f = facts(&[(R, false)], Some(aws(R)));
        f.regions.get_mut(R).unwrap().default_key = cmk(R);
        let d = decide(
            Intent::Shareable,
            &KeySpec::default(),
            &build(None, true),
            &f,
            &origins(),
        );
        assert!(!d.refused(), "{:?}", d.problems);
        assert!(
            d.changes
                .iter()
                .any(|c| c.attribute == "kms_key_id" && c.value == cmk(R).arn)
        );
    }

    #[test]
    fn never_overwrites_an_explicit_encrypt_boot_false() {
        let d = decide(
            Intent::Cmk,
            &team(),
            &build(Some(false), false),
            &facts(&[(R, false)], None),
            &origins(),
        );
        assert!(d.refused());
        assert!(d.changes.is_empty());
        let p = d
            .problems
            .iter()
            .find(|p| p.code == "contradiction")
            .unwrap();
        assert!(
            p.message.contains("encrypt_boot = false (t.json:7)"),
            "{}",
            p.message
        );
    }

    #[test]
    fn refuses_unencrypted_when_ebd_is_on_and_names_the_command() {
        let d = decide(
            Intent::Unencrypted,
            &KeySpec::default(),
            &build(Some(false), false),
            &facts(&[(R, true)], None),
            &origins(),
        );
        assert!(d.refused());
        let p = d.problems.iter().find(|p| p.code == "ebd_on").unwrap();
        assert_eq!(
            p.fix.split(" (").next().unwrap(),
            "aws ec2 disable-ebs-encryption-by-default --region ap-northeast-1"
        );
    }

    #[test]
    fn refuses_unencrypted_with_an_encrypted_source() {
        let d = decide(
            Intent::Unencrypted,
            &KeySpec::default(),
            &build(None, false),
            &facts(&[(R, false)], Some(aws(R))),
            &origins(),
        );
        assert_eq!(codes(&d), vec!["encrypted_source"]);
    }

    #[test]
    fn meets_unencrypted_baseline_without_changes() {
        let d = decide(
            Intent::Unencrypted,
            &KeySpec::default(),
            &build(Some(false), false),
            &facts(&[(R, false)], None),
            &origins(),
        );
        assert!(!d.refused() && d.changes.is_empty(), "{:?}", d.problems);
    }

    #[test]
    fn cmk_with_ami_regions_injects_region_kms_key_ids_for_every_region() {
        let mut s = build(None, false);
        s.ami_regions = vec![R2.into()];
        let d = decide(
            Intent::Cmk,
            &team(),
            &s,
            &facts(&[(R, false), (R2, false)], None),
            &origins(),
        );
        assert!(!d.refused(), "{:?}", d.problems);
        let map = d
            .changes
            .iter()
            .find(|c| c.attribute == "region_kms_key_ids")
            .unwrap();
        assert_eq!(map.value, serde_json::json!({ R2: cmk(R2).arn }));
        for p in &d.prediction {
            assert_eq!(p.summary().kms_key_arn, Some(cmk(&p.region).arn));
        }
    }

    #[test]
    fn cmk_refuses_when_the_key_is_missing_in_one_region() {
        let mut s = build(None, false);
        s.ami_regions = vec![R2.into()];
        let mut f = facts(&[(R, false), (R2, false)], None);
        f.keys.insert((R2.into(), "alias/team".into()), None);
        let d = decide(Intent::Cmk, &team(), &s, &f, &origins());
        assert!(d.refused());
        assert!(
            d.problems
                .iter()
                .any(|p| p.code == "key_missing" && p.message.contains(R2))
        );
    }

    #[test]
    fn cmk_refuses_another_kms_key_id_in_the_template() {
        let mut s = build(Some(true), false);
        s.kms_key_id = Some("alias/aws/ebs".into());
        let d = decide(
            Intent::Cmk,
            &team(),
            &s,
            &facts(&[(R, false)], None),
            &origins(),
        );
        assert!(d.refused());
        assert!(
            d.problems
                .iter()
                .any(|p| p.code == "contradiction" && p.message.contains("kms_key_id"))
        );
    }

    #[test]
    fn encrypted_intent_injects_only_encrypt_boot() {
        let d = decide(
            Intent::Encrypted,
            &KeySpec::default(),
            &build(None, false),
            &facts(&[(R, false)], None),
            &origins(),
        );
        let attrs: Vec<&str> = d.changes.iter().map(|c| c.attribute.as_str()).collect();
        assert_eq!(attrs, vec!["encrypt_boot"]);
        assert!(d.prediction[0].summary().encrypted);
    }

    #[test]
    fn any_never_refuses_but_reports() {
        let d = decide(
            Intent::Any,
            &KeySpec::default(),
            &build(Some(false), true),
            &facts(&[(R, true)], None),
            &origins(),
        );
        assert!(!d.refused());
        assert!(d.prediction[0].summary().encrypted);
    }

    #[test]
    fn auto_public_means_unencrypted() {
        let mut s = build(None, false);
        s.sharing.public = true;
        let d = decide(
            Intent::Auto,
            &KeySpec::default(),
            &s,
            &facts(&[(R, true)], None),
            &origins(),
        );
        assert_eq!(d.intent, Intent::Unencrypted);
        assert!(codes(&d).contains(&"public_encrypted") && codes(&d).contains(&"ebd_on"));
    }
}
