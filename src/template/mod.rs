//! Reading Packer templates (JSON and HCL2) into the values that decide encryption.
//!
//! Each reader resolves variables the way Packer does and hands back, per amazon-ebs build, its
//! attributes as JSON values with the `file:line` they were set at. A value that cannot be known
//! before the build (a `timestamp()`, an unknown function) is `Unknown`, never guessed.

pub mod funcs;
pub mod hcl;
pub mod json;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::{LaunchMapping, Settings, Sharing};

/// A template error: exit 2, with where.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template or a variable file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The temporary copy cannot be written (a read-only template folder, a full disk).
    #[error("cannot write the temporary copy of the template at {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Malformed JSON/HCL, a missing variable, a bad value: with file:line where known.
    #[error("{at}: {message}")]
    At {
        /// `file:line`, or the file alone.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// A problem with the flags that select builds or give variables.
    #[error("{0}")]
    Flags(String),
}

impl TemplateError {
    /// An error at `file:line`.
    pub fn at(at: impl Into<String>, message: impl Into<String>) -> Self {
        TemplateError::At {
            at: at.into(),
            message: message.into(),
        }
    }
}

/// How the user asked Packer to read the template: the `packer build` flags that matter here.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `-var name=value`, in order.
    pub vars: Vec<(String, String)>,
    /// `-var-file`, in order.
    pub var_files: Vec<PathBuf>,
    /// `-only`, comma-separated names or globs.
    pub only: Vec<String>,
    /// `-except`.
    pub except: Vec<String>,
    /// The process environment (`PKR_VAR_*`, `{{env}}`), passed in for testability.
    pub env: BTreeMap<String, String>,
}

/// Whether the template is JSON or HCL2, and where the build's block stands in it, so that the
/// injector can edit exactly that block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `builders[index]` of a JSON template.
    Json {
        /// Index in `builders`.
        index: usize,
    },
    /// A top-level `source "TYPE" "NAME"` block of an HCL2 file.
    Hcl {
        /// The file it is in.
        file: PathBuf,
        /// The source's type.
        source_type: String,
        /// The source's name.
        source_name: String,
    },
}

/// A value as far as it is known before the build.
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// Known: a JSON value.
    Value(Value),
    /// Not known before the build, and why.
    Unknown(String),
}

/// One attribute of a build.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its value.
    pub value: Known,
    /// Where it was set: `file:line`.
    pub at: String,
}

/// One build of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    /// The build name Packer reports (`name`/`type` in JSON, `TYPE.NAME` in HCL2).
    pub name: String,
    /// The builder type.
    pub builder_type: String,
    /// Its attributes.
    pub fields: BTreeMap<String, Field>,
    /// Where its block stands, for injection.
    pub origin: Origin,
}

/// A template as read.
#[derive(Debug, Clone)]
pub struct Template {
    /// The path given on the command line.
    pub path: PathBuf,
    /// The folder that `{{template_dir}}` / `path.root` name.
    pub dir: PathBuf,
    /// Whether it is HCL2 (a `.pkr.hcl` file or a folder).
    pub is_hcl: bool,
    /// The builds selected by `-only`/`-except`, of every builder type.
    pub builds: Vec<Build>,
}

/// Reads a template: JSON for `*.json` (but not `*.pkr.json`), else HCL2.
pub fn load(path: &Path, inputs: &Inputs) -> Result<Template, TemplateError> {
    let name = path.to_string_lossy();
    let mut template = if path.is_dir() || name.ends_with(".pkr.hcl") || name.ends_with(".pkr.json")
    {
        hcl::load(path, inputs)?
    } else {
        json::load(path, inputs)?
    };
    template.builds = select(std::mem::take(&mut template.builds), inputs)?;
    Ok(template)
}

/// Applies `-only` and `-except` (globs, matched against the full build name and the source
/// name) and rejects a name that matches no build, as Packer does.
fn select(builds: Vec<Build>, inputs: &Inputs) -> Result<Vec<Build>, TemplateError> {
    let names: Vec<String> = builds.iter().map(|b| b.name.clone()).collect();
    let matches = |pattern: &str, b: &Build| {
        let short = b.name.rsplit_once('.').map(|_| {
            b.name
                .split_once('.')
                .map_or(b.name.as_str(), |(_, rest)| rest)
        });
        let p = glob::Pattern::new(pattern).ok();
        let hit = |n: &str| p.as_ref().map_or(pattern == n, |p| p.matches(n));
        hit(&b.name) || short.is_some_and(hit)
    };
    for pattern in inputs.only.iter().chain(&inputs.except) {
        if !builds.iter().any(|b| matches(pattern, b)) {
            return Err(TemplateError::Flags(format!(
                "-only/-except names {pattern:?}, which matches no build (builds: {})",
                names.join(", ")
            )));
        }
    }
    Ok(builds
        .into_iter()
        .filter(|b| inputs.only.is_empty() || inputs.only.iter().any(|p| matches(p, b)))
        .filter(|b| !inputs.except.iter().any(|p| matches(p, b)))
        .collect())
}

/// Where the source AMI comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `source_ami`.
    Id(String),
    /// `source_ami_filter`, resolved with DescribeImages as Packer does.
    Filter {
        /// `filters`.
        filters: BTreeMap<String, String>,
        /// `owners`.
        owners: Vec<String>,
        /// `most_recent`.
        most_recent: bool,
    },
}

/// What a build needs from AWS and how its settings read, or why they cannot be known.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildInputs {
    /// The encryption settings.
    pub settings: Settings,
    /// The source AMI.
    pub source: SourceSpec,
    /// `custom_endpoint_ec2`.
    pub endpoint: Option<String>,
    /// Where each attribute was set.
    pub origins: BTreeMap<String, String>,
    /// `ami_users`: the accounts verification checks the AMI is shared with.
    pub ami_users: Vec<String>,
}

/// An attribute whose value is not known before the build, but decides the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// The attribute.
    pub attribute: String,
    /// Where.
    pub at: String,
    /// Why it is unknown.
    pub why: String,
}

/// Reads the deciding attributes of an amazon-ebs build.
pub fn build_inputs(b: &Build) -> Result<Result<BuildInputs, Vec<UnknownValue>>, TemplateError> {
    let mut unknown = Vec::new();
    let mut get = |key: &str| -> Option<(Value, String)> {
        let f = b.fields.get(key)?;
        match &f.value {
            Known::Value(v) if v.is_null() => None,
            Known::Value(v) => Some((v.clone(), f.at.clone())),
            Known::Unknown(why) => {
                unknown.push(UnknownValue {
                    attribute: key.into(),
                    at: f.at.clone(),
                    why: why.clone(),
                });
                None
            }
        }
    };
    let origins = b
        .fields
        .iter()
        .map(|(k, f)| (k.clone(), f.at.clone()))
        .collect();
    let region = get("region")
        .map(|(v, at)| string(&v, "region", &at))
        .transpose()?;
    let source_ami = get("source_ami")
        .map(|(v, at)| string(&v, "source_ami", &at))
        .transpose()?;
    let filter = get("source_ami_filter");
    let encrypt_boot = get("encrypt_boot")
        .map(|(v, at)| boolean(&v, "encrypt_boot", &at))
        .transpose()?;
    let kms_key_id = get("kms_key_id")
        .map(|(v, at)| string(&v, "kms_key_id", &at))
        .transpose()?
        .filter(|s| !s.is_empty());
    let ami_regions = get("ami_regions")
        .map(|(v, at)| strings(&v, "ami_regions", &at))
        .transpose()?
        .unwrap_or_default();
    let region_kms_key_ids = match get("region_kms_key_ids") {
        None => BTreeMap::new(),
        Some((Value::Object(m), at)) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), string(v, "region_kms_key_ids", &at)?)))
            .collect::<Result<_, TemplateError>>()?,
        Some((_, at)) => {
            return Err(TemplateError::at(
                at,
                "region_kms_key_ids must be a map of Region to key",
            ));
        }
    };
    let launch_mappings = match get("launch_block_device_mappings") {
        None => vec![],
        Some((v, at)) => launch_mappings(&v, &at)?,
    };
    let mut list = |key: &str| -> Result<Vec<String>, TemplateError> {
        get(key)
            .map(|(v, at)| strings(&v, key, &at))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let ami_users = list("ami_users")?;
    let ami_groups = list("ami_groups")?;
    let snapshot_users = list("snapshot_users")?;
    let snapshot_groups = list("snapshot_groups")?;
    let orgs = list("ami_org_arns")?;
    let ous = list("ami_ou_arns")?;
    let endpoint = get("custom_endpoint_ec2")
        .map(|(v, at)| string(&v, "custom_endpoint_ec2", &at))
        .transpose()?;
    if !unknown.is_empty() {
        return Ok(Err(unknown));
    }
    let Some(region) = region else {
        return Err(TemplateError::at(
            block_at(b),
            format!("build {}: region is required", b.name),
        ));
    };
    let source = match (source_ami, filter) {
        (Some(id), _) if !id.is_empty() => SourceSpec::Id(id),
        (_, Some((v, at))) => source_filter(&v, &at)?,
        _ => {
            return Err(TemplateError::at(
                block_at(b),
                format!(
                    "build {}: source_ami or source_ami_filter is required",
                    b.name
                ),
            ));
        }
    };
    let settings = Settings {
        region,
        encrypt_boot,
        kms_key_id,
        ami_regions,
        region_kms_key_ids,
        launch_mappings,
        sharing: Sharing {
            with_accounts: !(ami_users.is_empty()
                && snapshot_users.is_empty()
                && orgs.is_empty()
                && ous.is_empty())
                || ami_groups
                    .iter()
                    .chain(&snapshot_groups)
                    .any(|g| g != "all"),
            public: ami_groups
                .iter()
                .chain(&snapshot_groups)
                .any(|g| g == "all"),
        },
    };
    Ok(Ok(BuildInputs {
        settings,
        source,
        endpoint,
        origins,
        ami_users,
    }))
}

fn block_at(b: &Build) -> String {
    b.fields
        .values()
        .next()
        .map(|f| f.at.clone())
        .unwrap_or_else(|| b.name.clone())
}

fn string(v: &Value, key: &str, at: &str) -> Result<String, TemplateError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(TemplateError::at(
            at,
            format!("{key} must be a string, not {v}"),
        )),
    }
}

/// `encrypt_boot` and friends: a bool, or JSON's `"true"`/`"false"` strings (facts §5).
fn boolean(v: &Value, key: &str, at: &str) -> Result<bool, TemplateError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(TemplateError::at(
            at,
            format!("{key} must be true or false, not {v}"),
        )),
    }
}

fn strings(v: &Value, key: &str, at: &str) -> Result<Vec<String>, TemplateError> {
    match v {
        Value::Array(items) => items.iter().map(|i| string(i, key, at)).collect(),
        // Packer's JSON templates accept a comma-separated string for list fields.
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        _ => Err(TemplateError::at(
            at,
            format!("{key} must be a list of strings, not {v}"),
        )),
    }
}

fn launch_mappings(v: &Value, at: &str) -> Result<Vec<LaunchMapping>, TemplateError> {
    let Value::Array(items) = v else {
        return Err(TemplateError::at(
            at,
            "launch_block_device_mappings must be a list",
        ));
    };
    items
        .iter()
        .map(|item| {
            let get = |k: &str| item.get(k).filter(|v| !v.is_null());
            Ok(LaunchMapping {
                device: get("device_name")
                    .map(|v| string(v, "device_name", at))
                    .transpose()?
                    .unwrap_or_default(),
                encrypted: get("encrypted")
                    .map(|v| boolean(v, "encrypted", at))
                    .transpose()?,
                kms_key_id: get("kms_key_id")
                    .map(|v| string(v, "kms_key_id", at))
                    .transpose()?
                    .filter(|s| !s.is_empty()),
            })
        })
        .collect()
}

fn source_filter(v: &Value, at: &str) -> Result<SourceSpec, TemplateError> {
    // HCL2 gives a block as a list of one object.
    let v = match v {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    };
    let filters = match v.get("filters") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), string(v, "filters", at)?)))
            .collect::<Result<_, TemplateError>>()?,
        _ => BTreeMap::new(),
    };
    let owners = v
        .get("owners")
        .map(|o| strings(o, "owners", at))
        .transpose()?
        .unwrap_or_default();
    let most_recent = v
        .get("most_recent")
        .map(|m| boolean(m, "most_recent", at))
        .transpose()?
        .unwrap_or(false);
    Ok(SourceSpec::Filter {
        filters,
        owners,
        most_recent,
    })
}

/// `file:line` for a byte offset in a file's text.
pub fn line_of(file: &Path, text: &str, offset: usize) -> String {
    let line = text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1;
    format!("{}:{line}", file.display())
}
