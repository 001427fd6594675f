//! `plan`: read the template and the account, predict, decide. `build` runs the same plan first.
//!
//! Every AWS read is issued at once: all Regions' settings, every build's source AMI and every
//! key named, so a plan costs one Region's round trips however many Regions are involved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures_util::future::join_all;

use crate::aws::{Aws, AwsError, LookupError};
use crate::decide::{Decision, Problem, decide};
use crate::error::Error;
use crate::inject::Edits;
use crate::intent::{Intent, KeySpec};
use crate::model::{Facts, KeyInfo, RegionFacts, SourceSnapshot};
use crate::report::{BuildReport, RegionReport, Report, Verdict};
use crate::template::{self, BuildInputs, Inputs, Origin, Template, TemplateError};

/// What `plan` and `build` are asked to check.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// The template path (file or folder) as given.
    pub template: PathBuf,
    /// The `packer build` flags that change what the template means.
    pub inputs: Inputs,
    /// The intent.
    pub intent: Intent,
    /// The keys named for it.
    pub keys: KeySpec,
}

/// A finished plan.
#[derive(Debug)]
pub struct Planned {
    /// The report.
    pub report: Report,
    /// What to inject, per block.
    pub edits: Edits,
    /// The template as read.
    pub template: Template,
    /// What verification needs to know of each guarded build, by name.
    pub guarded: BTreeMap<String, Guarded>,
}

/// What verification needs of a planned build.
#[derive(Debug, Clone)]
pub struct Guarded {
    /// `custom_endpoint_ec2`.
    pub endpoint: Option<String>,
    /// `ami_users`.
    pub ami_users: Vec<String>,
    /// The intent applied.
    pub intent: Intent,
}

/// Plans every selected build.
pub async fn plan(cfg: &PlanConfig, aws: &Aws) -> Result<Planned, Error> {
    let template = template::load(&cfg.template, &cfg.inputs)?;
    let mut not_checked = Vec::new();
    let mut guarded: Vec<(usize, BuildInputs)> = Vec::new();
    let mut reports: Vec<(usize, BuildReport)> = Vec::new();
    for (i, b) in template.builds.iter().enumerate() {
        if b.builder_type != "amazon-ebs" {
            not_checked.push(b.name.clone());
            continue;
        }
        match template::build_inputs(b)? {
            Ok(inputs) => guarded.push((i, inputs)),
            Err(unknown) => {
                let problems = unknown
                    .into_iter()
                    .map(|u| Problem {
                        code: "unknown_value",
                        message: format!("{} ({}) is not known before the build: {}", u.attribute, u.at, u.why),
                        fix: format!("give {} a value that does not depend on the build (a variable, not a runtime function)", u.attribute),
                    })
                    .collect();
                let verdict = if cfg.intent == Intent::Any {
                    Verdict::Ok
                } else {
                    Verdict::Refused
                };
                reports.push((
                    i,
                    BuildReport {
                        name: b.name.clone(),
                        region: None,
                        source_ami: None,
                        intent: cfg.intent.to_string(),
                        verdict,
                        changes: vec![],
                        problems,
                        regions: vec![],
                    },
                ));
            }
        }
    }

    let facts = fetch(cfg, aws, &guarded).await?;
    let mut edits: Edits = Vec::new();
    let mut guarded_info = BTreeMap::new();
    for ((i, inputs), (source_ami, source)) in guarded.iter().zip(facts.sources) {
        let b = &template.builds[*i];
        let source = source.map_err(|e| match e {
            LookupError::NotFound(m) => Error::Template(TemplateError::at(
                inputs
                    .origins
                    .get("source_ami")
                    .or(inputs.origins.get("source_ami_filter"))
                    .cloned()
                    .unwrap_or_else(|| b.name.clone()),
                m,
            )),
            LookupError::Aws(a) => Error::Aws(a),
        })?;
        let regions: BTreeMap<String, RegionFacts> = inputs
            .settings
            .final_regions()
            .into_iter()
            .filter_map(|r| {
                facts
                    .regions
                    .get(&(inputs.endpoint.clone(), r.clone()))
                    .map(|f| (r, f.clone()))
            })
            .collect();
        let f = Facts {
            regions,
            source_ami: source_ami.clone(),
            source,
            keys: facts.keys.clone(),
        };
        let d = decide(cfg.intent, &cfg.keys, &inputs.settings, &f, &inputs.origins);
        if !d.changes.is_empty() {
            edits.push((b.origin.clone(), d.changes.clone()));
        }
        guarded_info.insert(
            b.name.clone(),
            Guarded {
                endpoint: inputs.endpoint.clone(),
                ami_users: inputs.ami_users.clone(),
                intent: d.intent,
            },
        );
        reports.push((*i, build_report(b.name.clone(), inputs, source_ami, &d)));
    }
    let conflicts = conflicting_edits(&template, &edits);
    reports.sort_by_key(|(i, _)| *i);
    let mut builds: Vec<BuildReport> = reports.into_iter().map(|(_, r)| r).collect();
    for (origin, names) in conflicts {
        for b in builds.iter_mut().filter(|b| names.contains(&b.name)) {
            b.verdict = Verdict::Refused;
            b.changes.clear();
            b.problems.push(Problem {
                code: "shared_source",
                message: format!(
                    "builds {} share one source block and need different changes",
                    names.join(", ")
                ),
                fix: "give each build its own source block, or the same intent and keys".into(),
            });
        }
        edits.retain(|(o, _)| o != &origin);
    }
    let verdict = Report::overall(&builds);
    if verdict == Verdict::Refused {
        edits.clear();
    }
    let report = Report {
        verdict,
        intent: cfg.intent.to_string(),
        template: cfg.template.display().to_string(),
        builds,
        not_checked,
    };
    Ok(Planned {
        report,
        edits,
        template,
        guarded: guarded_info,
    })
}

fn build_report(
    name: String,
    inputs: &BuildInputs,
    source_ami: String,
    d: &Decision,
) -> BuildReport {
    let verdict = if d.refused() {
        Verdict::Refused
    } else if d.changes.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Injected
    };
    BuildReport {
        name,
        region: Some(inputs.settings.region.clone()),
        source_ami: Some(source_ami),
        intent: d.intent.to_string(),
        verdict,
        changes: d.changes.clone(),
        problems: d.problems.clone(),
        regions: d
            .prediction
            .iter()
            .map(|p| RegionReport::planned(p.region.clone(), p.summary(), p.reasons.clone()))
            .collect(),
    }
}

/// HCL2 builds that share a source block but need different changes cannot both be served by
/// editing that block.
fn conflicting_edits(template: &Template, edits: &Edits) -> Vec<(Origin, Vec<String>)> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    for (i, (origin, changes)) in edits.iter().enumerate() {
        if seen.contains(&i) {
            continue;
        }
        let same: Vec<usize> = edits
            .iter()
            .enumerate()
            .filter(|(_, (o, _))| o == origin)
            .map(|(j, _)| j)
            .collect();
        seen.extend(&same);
        let differs = same.iter().any(|j| &edits[*j].1 != changes);
        let users = template
            .builds
            .iter()
            .filter(|b| &b.origin == origin)
            .count();
        if differs || (users > same.len()) {
            let names = template
                .builds
                .iter()
                .filter(|b| &b.origin == origin)
                .map(|b| b.name.clone())
                .collect();
            out.push((origin.clone(), names));
        }
    }
    out
}

struct Fetched {
    regions: BTreeMap<(Option<String>, String), RegionFacts>,
    sources: Vec<(String, Result<Vec<SourceSnapshot>, LookupError>)>,
    keys: BTreeMap<(String, String), Option<KeyInfo>>,
}

async fn fetch(
    cfg: &PlanConfig,
    aws: &Aws,
    builds: &[(usize, BuildInputs)],
) -> Result<Fetched, Error> {
    let mut region_set: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    let mut key_set: BTreeSet<(String, String)> = BTreeSet::new();
    for (_, b) in builds {
        let s = &b.settings;
        for r in s.final_regions() {
            region_set.insert((b.endpoint.clone(), r.clone()));
            if let Some(k) = cfg.keys.for_region(&r) {
                key_set.insert((r.clone(), k.to_string()));
            }
        }
        if let Some(k) = &s.kms_key_id {
            key_set.insert((s.region.clone(), k.clone()));
        }
        for (r, k) in &s.region_kms_key_ids {
            if !k.is_empty() {
                key_set.insert((r.clone(), k.clone()));
            }
        }
        for m in &s.launch_mappings {
            if let Some(k) = &m.kms_key_id {
                key_set.insert((s.region.clone(), k.clone()));
            }
        }
    }
    let first_region = builds.first().map(|(_, b)| b.settings.region.clone());
    let account = async {
        match &first_region {
            Some(r) => aws.account_id(r).await.map(Some),
            None => Ok(None),
        }
    };
    let regions = join_all(region_set.iter().map(|(e, r)| async move {
        aws.region_facts(r, e.as_deref())
            .await
            .map(|f| ((e.clone(), r.clone()), f))
    }));
    let keys = join_all(key_set.iter().map(|(r, k)| async move {
        aws.describe_key(r, k)
            .await
            .map(|info| ((r.clone(), k.clone()), info))
    }));
    let sources = join_all(builds.iter().map(|(_, b)| async move {
        let region = &b.settings.region;
        let endpoint = b.endpoint.as_deref();
        match aws.resolve_source(region, endpoint, &b.source).await {
            Ok(ami) => {
                let snaps = aws.source_snapshots(region, endpoint, &ami).await;
                (ami, snaps)
            }
            Err(e) => (String::new(), Err(e)),
        }
    }));
    let (account, regions, keys, sources) = tokio::join!(account, regions, keys, sources);
    let account = account?.unwrap_or_default();
    // A snapshot shared with this account is re-encrypted at launch (facts §2): ownership matters.
    let sources = sources
        .into_iter()
        .map(|(ami, snaps)| {
            let snaps = snaps.map(|list| {
                list.into_iter()
                    .map(|(mut snap, owner)| {
                        snap.owned = owner.as_deref() == Some(account.as_str());
                        snap
                    })
                    .collect()
            });
            (ami, snaps)
        })
        .collect();
    let regions = regions
        .into_iter()
        .collect::<Result<BTreeMap<_, _>, AwsError>>()?;
    let keys = keys
        .into_iter()
        .collect::<Result<BTreeMap<_, _>, AwsError>>()?;
    Ok(Fetched {
        regions,
        sources,
        keys,
    })
}
