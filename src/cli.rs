//! The command line of amiguard's own commands, and the configuration built from it. Nothing
//! below this module sees clap.
//!
//! Packer's flags are Go flags: `-var x=1`, `--var x=1`, `-var=x=1` all work. clap wants
//! `--var`, so known Packer flags given with one dash are rewritten before parsing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::error::Error;
use crate::intent::{Intent, KeySpec};
use crate::plan::PlanConfig;
use crate::template::Inputs;

/// Packer's long flags that take a value, as Go's flag package spells them.
const PACKER_VALUE_FLAGS: &[&str] = &["var", "var-file", "only", "except"];
/// `packer build` flags that take a value but do not change what the template means.
const PACKER_OTHER_VALUE_FLAGS: &[&str] = &["on-error", "parallel-builds"];
/// amiguard's own flags on `build`, removed before Packer sees the arguments.
const GUARD_FLAGS: &[&str] = &["--intent", "--kms-key", "--report"];

/// The environment variable that sets the intent.
pub const INTENT_ENV: &str = "AMIGUARD_INTENT";
/// The environment variable that names keys (comma-separated `KEY` or `REGION=KEY`).
pub const KMS_KEY_ENV: &str = "AMIGUARD_KMS_KEY";
/// The configuration file looked for in the template's folder and its parents.
pub const CONFIG_FILE: &str = "amiguard.toml";

/// How `plan` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Human,
    /// One JSON report.
    Json,
}

/// amiguard's own options, on `plan` (and later `build`, `verify`).
#[derive(Debug, Clone, clap::Args)]
pub struct GuardArgs {
    /// any, unencrypted, encrypted, shareable, cmk or auto [default: $AMIGUARD_INTENT, amiguard.toml, auto]
    #[arg(long)]
    pub intent: Option<Intent>,
    /// KEY or REGION=KEY (key id, key ARN, alias or alias ARN); repeatable
    #[arg(long = "kms-key", value_name = "KEY")]
    pub kms_key: Vec<String>,
    /// Also write the JSON report to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// The `packer build` flags that change what a template means.
#[derive(Debug, Clone, clap::Args)]
pub struct TemplateArgs {
    /// NAME=VALUE: a template variable, as for `packer build -var`
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub var: Vec<String>,
    /// A variable file, as for `packer build -var-file`
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_file: Vec<PathBuf>,
    /// Only these builds (comma-separated names or globs)
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// All builds but these
    #[arg(long, value_delimiter = ',')]
    pub except: Vec<String>,
    /// The template: a JSON file, a .pkr.hcl file or a folder of them
    pub template: PathBuf,
}

/// `amiguard plan`.
#[derive(Debug, Parser)]
#[command(
    name = "amiguard plan",
    about = "Predict every AMI's encryption in every Region, and show the template change that meets the intent or why nothing can. Launches nothing.",
    disable_version_flag = true
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Write the template copy amiguard would give Packer to PATH (a folder for HCL2 folders)
    #[arg(long, value_name = "PATH")]
    pub emit_copy: Option<PathBuf>,
}

/// `amiguard build …`, split into what Packer gets and what amiguard reads.
#[derive(Debug, Clone)]
pub struct BuildArgs {
    /// The arguments after `build` that Packer gets, unchanged and in order (amiguard's own removed).
    pub packer_args: Vec<OsString>,
    /// Where the template stands in `packer_args`, if there is one.
    pub template_at: Option<usize>,
    /// amiguard's own options.
    pub guard: GuardArgs,
    /// The flags that change what the template means.
    pub template: Option<TemplateArgs>,
    /// `-h`/`-help`: Packer's own help.
    pub help: bool,
}

/// Splits `amiguard build ARGS…` (without the `build`). Go's flag syntax: `-x v`, `-x=v`,
/// `--x v`, booleans alone or `-x=false`.
pub fn parse_build(args: &[OsString]) -> Result<BuildArgs, Error> {
    let mut packer_args = Vec::new();
    let mut guard = GuardArgs {
        intent: None,
        kms_key: vec![],
        report: None,
    };
    let mut t = TemplateArgs {
        var: vec![],
        var_file: vec![],
        only: vec![],
        except: vec![],
        template: PathBuf::new(),
    };
    let mut template_at = None;
    let mut help = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if GUARD_FLAGS.contains(&flag.as_str()) {
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i)
                        .map(|v| v.to_string_lossy().into_owned())
                        .ok_or_else(|| Error::Usage(format!("{flag} needs a value")))?
                }
            };
            match flag.as_str() {
                "--intent" => guard.intent = Some(value.parse().map_err(Error::Usage)?),
                "--kms-key" => guard.kms_key.push(value),
                _ => guard.report = Some(PathBuf::from(value)),
            }
            i += 1;
            continue;
        }
        if flag.starts_with('-') && flag != "-" {
            let name = flag.trim_start_matches('-');
            packer_args.push(args[i].clone());
            if matches!(name, "h" | "help") {
                help = true;
            }
            if PACKER_VALUE_FLAGS.contains(&name) || PACKER_OTHER_VALUE_FLAGS.contains(&name) {
                let value = match inline {
                    Some(v) => Some(v),
                    None => {
                        i += 1;
                        args.get(i).map(|v| {
                            packer_args.push(v.clone());
                            v.to_string_lossy().into_owned()
                        })
                    }
                };
                if let Some(v) = value {
                    match name {
                        "var" => t.var.push(v),
                        "var-file" => t.var_file.push(PathBuf::from(v)),
                        "only" => t
                            .only
                            .extend(v.split(',').filter(|s| !s.is_empty()).map(String::from)),
                        "except" => t
                            .except
                            .extend(v.split(',').filter(|s| !s.is_empty()).map(String::from)),
                        _ => {}
                    }
                }
            }
        } else {
            template_at = Some(packer_args.len());
            packer_args.push(args[i].clone());
        }
        i += 1;
    }
    let template = template_at.map(|at| {
        t.template = PathBuf::from(&packer_args[at]);
        t
    });
    Ok(BuildArgs {
        packer_args,
        template_at,
        guard,
        template,
        help,
    })
}

/// `amiguard verify`.
#[derive(Debug, Parser)]
#[command(
    name = "amiguard verify",
    about = "Read back every snapshot of existing AMIs and check them against the intent. Read-only.",
    disable_version_flag = true
)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub guard: GuardArgs,
    /// The Region of AMIs given without one [default: the AWS configuration's Region]
    #[arg(long)]
    pub region: Option<String>,
    /// Packer's manifest post-processor output: every AMI of every build in it
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// AMI ids, as ami-… or REGION:ami-…
    pub amis: Vec<String>,
}

/// Parses `amiguard verify ARGS…` (without the `verify`).
pub fn parse_verify(args: &[OsString]) -> Result<VerifyArgs, clap::Error> {
    let mut full = vec![OsString::from("amiguard verify")];
    full.extend(args.iter().cloned());
    VerifyArgs::try_parse_from(full)
}

/// The intent and keys for `verify`: flags, environment, `amiguard.toml` from the current folder.
pub fn verify_intent(
    guard: &GuardArgs,
    env: &BTreeMap<String, String>,
) -> Result<(Intent, KeySpec), Error> {
    let t = TemplateArgs {
        var: vec![],
        var_file: vec![],
        only: vec![],
        except: vec![],
        template: PathBuf::from("."),
    };
    let cfg = plan_config(guard, &t, env)?;
    Ok((cfg.intent, cfg.keys))
}

/// Rewrites `-var`, `-var-file=…`, … to the `--` spelling clap parses.
pub fn normalize_go_flags(args: &[OsString]) -> Vec<OsString> {
    args.iter()
        .map(|a| match a.to_str() {
            Some(s) if s.starts_with('-') && !s.starts_with("--") => {
                let name = s[1..].split('=').next().unwrap_or_default();
                if PACKER_VALUE_FLAGS.contains(&name) {
                    OsString::from(format!("-{s}"))
                } else {
                    a.clone()
                }
            }
            _ => a.clone(),
        })
        .collect()
}

/// Parses `amiguard plan ARGS…` (without the `plan`).
pub fn parse_plan(args: &[OsString]) -> Result<PlanArgs, clap::Error> {
    let mut full = vec![OsString::from("amiguard plan")];
    full.extend(normalize_go_flags(args));
    PlanArgs::try_parse_from(full)
}

/// `amiguard.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The intent.
    pub intent: Option<String>,
    /// A key for every Region.
    pub kms_key: Option<String>,
    /// A key per Region.
    #[serde(default)]
    pub kms_keys: BTreeMap<String, String>,
}

/// The nearest `amiguard.toml` from the template's folder up.
pub fn find_config(template: &Path) -> Result<Option<(PathBuf, FileConfig)>, Error> {
    let start = if template.is_dir() {
        template.to_path_buf()
    } else {
        template.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let start = std::fs::canonicalize(if start.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &start
    })
    .unwrap_or(start);
    for dir in start.ancestors() {
        let p = dir.join(CONFIG_FILE);
        if p.is_file() {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| Error::Usage(format!("cannot read {}: {e}", p.display())))?;
            let cfg: FileConfig = toml::from_str(&text).map_err(|e| {
                let line = e
                    .span()
                    .map(|s| text[..s.start].matches('\n').count() + 1)
                    .unwrap_or(1);
                Error::Usage(format!("{}:{line}: {}", p.display(), e.message()))
            })?;
            return Ok(Some((p, cfg)));
        }
    }
    Ok(None)
}

/// Builds the plan configuration: flags, then environment, then `amiguard.toml`, then `auto`.
pub fn plan_config(
    guard: &GuardArgs,
    t: &TemplateArgs,
    env: &BTreeMap<String, String>,
) -> Result<PlanConfig, Error> {
    let file = find_config(&t.template)?;
    let intent = match (
        &guard.intent,
        env.get(INTENT_ENV).filter(|s| !s.is_empty()),
        file.as_ref()
            .and_then(|(p, f)| f.intent.clone().map(|i| (p, i))),
    ) {
        (Some(i), _, _) => *i,
        (None, Some(e), _) => e
            .parse()
            .map_err(|m| Error::Usage(format!("${INTENT_ENV}: {m}")))?,
        (None, None, Some((p, i))) => i
            .parse()
            .map_err(|m| Error::Usage(format!("{}: {m}", p.display())))?,
        _ => Intent::Auto,
    };
    let mut keys = KeySpec::default();
    if !guard.kms_key.is_empty() {
        for k in &guard.kms_key {
            keys.add(k).map_err(Error::Usage)?;
        }
    } else if let Some(e) = env.get(KMS_KEY_ENV).filter(|s| !s.is_empty()) {
        for k in e.split(',') {
            keys.add(k)
                .map_err(|m| Error::Usage(format!("${KMS_KEY_ENV}: {m}")))?;
        }
    } else if let Some((_, f)) = &file {
        if let Some(k) = &f.kms_key {
            keys.add(k).map_err(Error::Usage)?;
        }
        for (r, k) in &f.kms_keys {
            keys.per_region.insert(r.clone(), k.clone());
        }
    }
    if intent == Intent::Cmk && keys.is_empty() {
        return Err(Error::Usage(format!(
            "intent cmk needs a key: --kms-key KEY (or REGION=KEY), ${KMS_KEY_ENV}, or kms_key in {CONFIG_FILE}"
        )));
    }
    let vars = t
        .var
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Error::Usage(format!("-var {v:?}: expected NAME=VALUE")))
        })
        .collect::<Result<_, _>>()?;
    Ok(PlanConfig {
        template: t.template.clone(),
        inputs: Inputs {
            vars,
            var_files: t.var_file.clone(),
            only: t.only.clone(),
            except: t.except.clone(),
            env: env.clone(),
        },
        intent,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_single_dash_flags_are_understood() {
        let args: Vec<OsString> = [
            "-var",
            "a=1",
            "-var-file=v.json",
            "-only=x,y",
            "--intent",
            "cmk",
            "--kms-key",
            "alias/k",
            "t.json",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let p = parse_plan(&args).unwrap();
        assert_eq!(p.template.var, vec!["a=1"]);
        assert_eq!(p.template.var_file, vec![PathBuf::from("v.json")]);
        assert_eq!(p.template.only, vec!["x", "y"]);
        assert_eq!(p.guard.intent, Some(Intent::Cmk));
    }

    #[test]
    fn flag_beats_environment_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "intent = \"encrypted\"\nkms_key = \"alias/file\"\n",
        )
        .unwrap();
        let t = TemplateArgs {
            var: vec![],
            var_file: vec![],
            only: vec![],
            except: vec![],
            template: dir.path().join("t.json"),
        };
        let none = GuardArgs {
            intent: None,
            kms_key: vec![],
            report: None,
        };
        let empty = BTreeMap::new();
        assert_eq!(
            plan_config(&none, &t, &empty).unwrap().intent,
            Intent::Encrypted
        );
        assert_eq!(
            plan_config(&none, &t, &empty)
                .unwrap()
                .keys
                .global
                .as_deref(),
            Some("alias/file")
        );
        let env: BTreeMap<String, String> =
            [(INTENT_ENV.to_string(), "unencrypted".to_string())].into();
        assert_eq!(
            plan_config(&none, &t, &env).unwrap().intent,
            Intent::Unencrypted
        );
        let flag = GuardArgs {
            intent: Some(Intent::Any),
            ..none
        };
        assert_eq!(plan_config(&flag, &t, &env).unwrap().intent, Intent::Any);
    }

    #[test]
    fn the_example_config_file_in_templates_is_valid() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/amiguard.toml.example"
        ))
        .unwrap();
        let cfg: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(
            cfg.intent.unwrap().parse::<Intent>().unwrap(),
            Intent::Shareable
        );
        assert_eq!(cfg.kms_key.as_deref(), Some("alias/golden"));
    }

    #[test]
    fn a_bad_config_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "\nintnet = \"cmk\"\n").unwrap();
        let err = find_config(&dir.path().join("t.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("amiguard.toml:2"), "{err}");
    }
}
