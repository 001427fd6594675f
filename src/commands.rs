//! amiguard's own commands, from parsed arguments to an exit code.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::aws::Aws;
use crate::cli::{self, Format};
use crate::error::Error;
use crate::exit::Exit;
use crate::report::Verdict;

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

fn env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Prints clap's help or error the way clap would, and maps it to an exit.
fn clap_exit(e: clap::Error) -> Result<Exit, Error> {
    let _ = e.print();
    Ok(if e.use_stderr() {
        Exit::Usage
    } else {
        Exit::Ok
    })
}

/// `amiguard plan`.
pub fn plan(args: &[OsString]) -> Result<Exit, Error> {
    let a = match cli::parse_plan(args) {
        Ok(a) => a,
        Err(e) => return clap_exit(e),
    };
    let cfg = cli::plan_config(&a.guard, &a.template, &env())?;
    let planned = runtime()?.block_on(async {
        let aws = Aws::load().await;
        crate::plan::plan(&cfg, &aws).await
    })?;
    match a.format {
        Format::Human => print!("{}", planned.report.to_human()),
        Format::Json => print!("{}", planned.report.to_json()),
    }
    if let Some(path) = &a.guard.report {
        std::fs::write(path, planned.report.to_json()).map_err(|e| {
            Error::Usage(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })?;
    }
    if let Some(dest) = &a.emit_copy
        && planned.report.verdict == Verdict::Injected
    {
        let copy = crate::inject::write_copy(&planned.template, &planned.edits)?;
        copy_out(&copy.path, dest)?;
    }
    Ok(match planned.report.verdict {
        Verdict::Refused => Exit::Refused,
        _ => Exit::Ok,
    })
}

fn copy_out(from: &std::path::Path, to: &std::path::Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Usage(format!("cannot write {}: {e}", to.display()));
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(fail)?;
        for entry in std::fs::read_dir(from).map_err(fail)?.flatten() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).map_err(fail)?;
        }
    } else {
        std::fs::copy(from, to).map_err(fail)?;
    }
    Ok(())
}

/// `amiguard build`: plan, run the real Packer on the original or the injected copy, verify.
/// `global` holds Packer's global flags given before `build` (`-machine-readable`).
pub fn build(global: &[OsString], args: &[OsString]) -> Result<Exit, Error> {
    let packer = crate::packer::locate()?;
    let b = cli::parse_build(args)?;
    let mut full: Vec<OsString> = global.to_vec();
    full.push("build".into());
    let (Some(template_args), Some(template_at), false) =
        (b.template.clone(), b.template_at, b.help)
    else {
        // No template or a help request: Packer answers, exactly as it would.
        full.extend(b.packer_args);
        return Err(packer.exec(&full).into());
    };
    let cfg = cli::plan_config(&b.guard, &template_args, &env())?;
    let rt = runtime()?;
    rt.block_on(async {
        let aws = Aws::load().await;
        let mut planned = crate::plan::plan(&cfg, &aws).await?;
        // amiguard's own lines go to stderr: stdout stays Packer's, whatever its format.
        eprint!("{}", planned.report.to_human());
        if planned.report.verdict == Verdict::Refused {
            write_report(&b.guard.report, &planned.report)?;
            eprintln!("amiguard: refused before anything was launched (exit 3)");
            return Ok(Exit::Refused);
        }
        let mut signals = crate::run::Signals::install()
            .map_err(|e| Error::Usage(format!("cannot install signal handlers: {e}")))?;
        let copy = if planned.edits.is_empty() {
            None
        } else {
            Some(crate::inject::write_copy(
                &planned.template,
                &planned.edits,
            )?)
        };
        let mut packer_args = b.packer_args.clone();
        if let Some(c) = &copy {
            packer_args[template_at] = c.path.clone().into_os_string();
        }
        full.extend(packer_args);
        let finished = crate::run::run_packer(&packer, &full, &mut signals).await?;
        drop(copy);
        if finished.code != 0 {
            eprintln!(
                "amiguard: Packer exited with {}: nothing was verified",
                finished.code
            );
            write_report(&b.guard.report, &planned.report)?;
            return Ok(Exit::Packer(finished.code.clamp(0, 255) as u8));
        }
        let targets = build_targets(&planned, &finished.artifacts);
        let checked = crate::verify::verify(&aws, &cfg.keys, targets).await?;
        apply_checks(
            &mut planned.report,
            &checked,
            &planned.guarded,
            &finished.artifacts,
        );
        planned.report.set_verified();
        eprint!("{}", planned.report.to_human_checks());
        write_report(&b.guard.report, &planned.report)?;
        Ok(if planned.report.verdict == Verdict::Violated {
            Exit::Violated
        } else {
            Exit::Ok
        })
    })
}

fn write_report(
    path: &Option<std::path::PathBuf>,
    report: &crate::report::Report,
) -> Result<(), Error> {
    if let Some(path) = path {
        std::fs::write(path, report.to_json()).map_err(|e| {
            Error::Usage(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

fn build_targets(
    planned: &crate::plan::Planned,
    artifacts: &[crate::run::Artifact],
) -> Vec<crate::verify::Target> {
    artifacts
        .iter()
        .filter_map(|a| {
            let g = planned.guarded.get(&a.build)?;
            let predicted = planned
                .report
                .builds
                .iter()
                .find(|b| b.name == a.build)
                .and_then(|b| b.regions.iter().find(|r| r.region == a.region))
                .and_then(|r| r.predicted.clone());
            Some(crate::verify::Target {
                build: a.build.clone(),
                region: a.region.clone(),
                ami: a.ami.clone(),
                endpoint: g.endpoint.clone(),
                intent: g.intent,
                share_with: g.ami_users.clone(),
                predicted,
            })
        })
        .collect()
}

/// Puts each check into its build's Region; a guarded build that reported no AMI is violated.
fn apply_checks(
    report: &mut crate::report::Report,
    checked: &[crate::verify::Checked],
    guarded: &BTreeMap<String, crate::plan::Guarded>,
    artifacts: &[crate::run::Artifact],
) {
    use crate::report::RegionReport;
    use crate::verify::{Actual, Check};
    for b in report
        .builds
        .iter_mut()
        .filter(|b| guarded.contains_key(&b.name))
    {
        if !artifacts.iter().any(|a| a.build == b.name) {
            for r in &mut b.regions {
                r.actual = Some(Actual {
                    ami_id: String::new(),
                    snapshots: vec![],
                    public: false,
                    shared_with: None,
                });
                r.verdict = Some(Check::Violated);
                r.violations = vec![format!(
                    "Packer reported no AMI for build {} in {}",
                    b.name, r.region
                )];
            }
            continue;
        }
        for c in checked.iter().filter(|c| c.target.build == b.name) {
            match b.regions.iter_mut().find(|r| r.region == c.target.region) {
                Some(r) => r.add_check(c),
                None => b.regions.push(RegionReport::checked(c)),
            }
        }
    }
}

/// `amiguard verify`.
pub fn verify(args: &[OsString]) -> Result<Exit, Error> {
    let a = match cli::parse_verify(args) {
        Ok(a) => a,
        Err(e) => return clap_exit(e),
    };
    let (intent, keys) = cli::verify_intent(&a.guard, &env())?;
    // Without a plan there is no build to look at: `auto` checks nothing beyond reporting.
    let intent = if intent == crate::intent::Intent::Auto {
        crate::intent::Intent::Any
    } else {
        intent
    };
    if a.amis.is_empty() && a.manifest.is_none() {
        return Err(Error::Usage(
            "verify needs AMI ids (ami-… or REGION:ami-…) or --manifest FILE".into(),
        ));
    }
    let rt = runtime()?;
    rt.block_on(async {
        let aws = Aws::load().await;
        let default_region = a.region.clone().or_else(|| aws.default_region());
        let mut targets = Vec::new();
        let mut add = |build: &str, id: &str| -> Result<(), Error> {
            let (region, ami) = match id.split_once(':') {
                Some((r, ami)) => (r.to_string(), ami.to_string()),
                None => (
                    default_region.clone().ok_or_else(|| {
                        Error::Usage(format!(
                            "{id}: no Region: give --region, REGION:{id}, or set AWS_REGION"
                        ))
                    })?,
                    id.to_string(),
                ),
            };
            if !ami.starts_with("ami-") {
                return Err(Error::Usage(format!(
                    "{id:?} is not an AMI id (ami-… or REGION:ami-…)"
                )));
            }
            targets.push(crate::verify::Target {
                build: build.to_string(),
                region,
                ami,
                endpoint: None,
                intent,
                share_with: vec![],
                predicted: None,
            });
            Ok(())
        };
        if let Some(m) = &a.manifest {
            let text = std::fs::read_to_string(m)
                .map_err(|e| Error::Usage(format!("cannot read {}: {e}", m.display())))?;
            let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                Error::Usage(format!(
                    "{}:{}: not a Packer manifest: {e}",
                    m.display(),
                    e.line()
                ))
            })?;
            for b in doc["builds"].as_array().into_iter().flatten() {
                let name = b["name"].as_str().unwrap_or("manifest");
                for id in b["artifact_id"]
                    .as_str()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                {
                    add(name, id)?;
                }
            }
        }
        for id in &a.amis {
            add("verify", id)?;
        }
        let checked = crate::verify::verify(&aws, &keys, targets).await?;
        let mut builds: Vec<crate::report::BuildReport> = Vec::new();
        for c in &checked {
            if !builds.iter().any(|b| b.name == c.target.build) {
                builds.push(crate::report::BuildReport {
                    name: c.target.build.clone(),
                    region: None,
                    source_ami: None,
                    intent: intent.to_string(),
                    verdict: Verdict::Ok,
                    changes: vec![],
                    problems: vec![],
                    regions: vec![],
                });
            }
            let b = builds
                .iter_mut()
                .find(|b| b.name == c.target.build)
                .expect("just added");
            b.regions.push(crate::report::RegionReport::checked(c));
        }
        let mut report = crate::report::Report {
            verdict: Verdict::Ok,
            intent: intent.to_string(),
            template: a
                .manifest
                .as_ref()
                .map(|m| m.display().to_string())
                .unwrap_or_default(),
            builds,
            not_checked: vec![],
        };
        report.set_verified();
        match a.format {
            Format::Human => print!("{}", report.to_human_checks()),
            Format::Json => print!("{}", report.to_json()),
        }
        write_report(&a.guard.report, &report)?;
        Ok(if report.verdict == Verdict::Violated {
            Exit::Violated
        } else {
            Exit::Ok
        })
    })
}
