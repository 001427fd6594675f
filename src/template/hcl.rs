//! HCL2 templates: a `.pkr.hcl` file or a folder of them, with `variable`, `locals`, `-var`,
//! `-var-file`, `PKR_VAR_*`, `*.auto.pkrvars.hcl`, `source` blocks and `build` blocks with
//! nested `source` blocks (facts §5, Templates).
//!
//! hcl-edit parses (it keeps positions, so every message has its `file:line`), hcl-rs evaluates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate};
use hcl_edit::Span;
use hcl_edit::structure::{Block, Body, Structure};
use serde_json::Value;

use super::{Build, Field, Inputs, Known, Origin, Template, TemplateError, funcs, line_of};

/// One parsed file.
pub struct File {
    /// Its path.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// Its body.
    pub body: Body,
}

impl File {
    fn at(&self, span: Option<std::ops::Range<usize>>) -> String {
        match span {
            Some(r) => line_of(&self.path, &self.text, r.start),
            None => self.path.display().to_string(),
        }
    }
}

/// Parses one HCL file, reporting a syntax error at its line.
pub fn parse_file(path: &Path) -> Result<File, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.into(),
        source,
    })?;
    let body = hcl_edit::parser::parse_body(&text).map_err(|e| {
        TemplateError::at(
            format!("{}:{}", path.display(), e.location().line()),
            format!("malformed HCL: {}", e.message()),
        )
    })?;
    Ok(File {
        path: path.into(),
        text,
        body,
    })
}

/// The template files of an HCL2 build: the file itself, or every `*.pkr.hcl` of a folder.
pub fn template_files(path: &Path) -> Result<Vec<PathBuf>, TemplateError> {
    if !path.is_dir() {
        if path.to_string_lossy().ends_with(".pkr.json") {
            return Err(TemplateError::at(
                path.display().to_string(),
                "HCL2 in JSON syntax (.pkr.json) is not supported yet",
            ));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = list(path, ".pkr.hcl")?;
    if let Some(json) = list(path, ".pkr.json")?.first() {
        return Err(TemplateError::at(
            json.display().to_string(),
            "HCL2 in JSON syntax (.pkr.json) is not supported yet",
        ));
    }
    files.sort();
    if files.is_empty() {
        return Err(TemplateError::at(
            path.display().to_string(),
            "the folder has no *.pkr.hcl file",
        ));
    }
    Ok(files)
}

fn list(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, TemplateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TemplateError::Read {
        path: dir.into(),
        source,
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    Ok(out)
}

/// A build's use of a source: its type, its name and the nested block that refines it.
type SourceUse<'a> = (String, String, Option<(&'a File, &'a Block)>);

struct Variable {
    value: Option<hcl::Value>,
    at: String,
}

/// Reads an HCL2 template.
pub fn load(path: &Path, inputs: &Inputs) -> Result<Template, TemplateError> {
    let files = template_files(path)?
        .iter()
        .map(|p| parse_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let dir = std::fs::canonicalize(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &dir
    })
    .unwrap_or(dir);

    let mut base = Context::new();
    funcs::declare(&mut base);

    // Variables: default < PKR_VAR_* < *.auto.pkrvars.hcl < -var-file < -var.
    let mut vars: BTreeMap<String, Variable> = BTreeMap::new();
    for f in &files {
        for block in f.body.get_blocks("variable") {
            let Some(name) = block.labels.first().map(|l| l.as_str().to_string()) else {
                continue;
            };
            let at = f.at(block.span());
            let value = match block.body.get_attribute("default") {
                Some(a) => Some(eval(&a.value, &base).map_err(|e| {
                    TemplateError::at(f.at(a.span()), format!("variable {name}: {e}"))
                })?),
                None => None,
            };
            vars.insert(name, Variable { value, at });
        }
    }
    let mut set = |name: &str, value: hcl::Value, from: &str| -> Result<(), TemplateError> {
        match vars.get_mut(name) {
            Some(v) => {
                v.value = Some(value);
                Ok(())
            }
            None => Err(TemplateError::Flags(format!(
                "{from} sets variable {name:?}, which the template does not declare"
            ))),
        }
    };
    for (k, v) in &inputs.env {
        if let Some(name) = k.strip_prefix("PKR_VAR_")
            && vars_has(&files, name)
        {
            let typed = typed(&files, name, v, &base)?;
            set(name, typed, k)?;
        }
    }
    let mut var_files: Vec<PathBuf> = if path.is_dir() {
        list(path, ".auto.pkrvars.hcl")?
    } else {
        vec![]
    };
    var_files.extend(inputs.var_files.iter().cloned());
    for vf in &var_files {
        for (name, value) in read_var_file(vf, &base)? {
            set(&name, value, &vf.display().to_string())?;
        }
    }
    for (k, v) in &inputs.vars {
        let typed = typed(&files, k, v, &base)?;
        set(k, typed, "-var")?;
    }
    let mut var_obj = hcl::Map::new();
    for (name, v) in &vars {
        match &v.value {
            Some(value) => {
                var_obj.insert(name.clone(), value.clone());
            }
            None => {
                return Err(TemplateError::at(
                    v.at.clone(),
                    format!(
                        "variable {name} has no value: give it with -var {name}=VALUE, a -var-file or PKR_VAR_{name}"
                    ),
                ));
            }
        }
    }
    let mut ctx = base.clone();
    ctx.declare_var("var", hcl::Value::Object(var_obj));
    let mut path_obj = hcl::Map::new();
    path_obj.insert(
        "root".to_string(),
        hcl::Value::String(dir.display().to_string()),
    );
    path_obj.insert(
        "cwd".to_string(),
        hcl::Value::String(
            std::env::current_dir()
                .unwrap_or_default()
                .display()
                .to_string(),
        ),
    );
    ctx.declare_var("path", hcl::Value::Object(path_obj));
    ctx.declare_var("local", hcl::Value::Object(locals(&files, &ctx)));

    // Sources, then the builds that use them.
    let mut sources: BTreeMap<(String, String), (&File, &Block)> = BTreeMap::new();
    for f in &files {
        for block in f.body.get_blocks("source") {
            if let [t, n] = &block.labels[..] {
                sources.insert((t.as_str().to_string(), n.as_str().to_string()), (f, block));
            }
        }
    }
    let mut builds = Vec::new();
    for f in &files {
        for build in f.body.get_blocks("build") {
            let build_name = match build.body.get_attribute("name") {
                Some(a) => Some(
                    eval_string(&a.value, &ctx)
                        .map_err(|e| TemplateError::at(f.at(a.span()), e))?,
                ),
                None => None,
            };
            let mut uses: Vec<SourceUse> = Vec::new();
            if let Some(a) = build.body.get_attribute("sources") {
                let list =
                    eval(&a.value, &ctx).map_err(|e| TemplateError::at(f.at(a.span()), e))?;
                for item in list.as_array().into_iter().flatten() {
                    let s = item.as_str().unwrap_or_default();
                    let (t, n) =
                        source_ref(s.strip_prefix("source.").unwrap_or(s)).ok_or_else(|| {
                            TemplateError::at(f.at(a.span()), format!("bad source reference {s:?}"))
                        })?;
                    uses.push((t, n, None));
                }
            }
            for nested in build.body.get_blocks("source") {
                let label = nested
                    .labels
                    .first()
                    .map(|l| l.as_str())
                    .unwrap_or_default();
                let (t, n) = source_ref(label.strip_prefix("source.").unwrap_or(label))
                    .ok_or_else(|| {
                        TemplateError::at(
                            f.at(nested.span()),
                            format!("bad source reference {label:?}"),
                        )
                    })?;
                uses.push((t, n, Some((f, nested))));
            }
            for (t, n, nested) in uses {
                let Some((sf, sblock)) = sources.get(&(t.clone(), n.clone())) else {
                    return Err(TemplateError::at(
                        f.at(build.span()),
                        format!("build uses source.{t}.{n}, which is not defined"),
                    ));
                };
                let mut fields = block_fields(sf, &sblock.body, &ctx);
                let mut name = n.clone();
                if let Some((nf, nblock)) = nested {
                    for (k, field) in block_fields(nf, &nblock.body, &ctx) {
                        if k == "name" {
                            if let Known::Value(Value::String(s)) = &field.value {
                                name = s.clone();
                            }
                            continue;
                        }
                        if let Some(prev) = fields.get(&k) {
                            return Err(TemplateError::at(
                                field.at.clone(),
                                format!(
                                    "{k} is set in source.{t}.{n} ({}) and again in the build's nested source block",
                                    prev.at
                                ),
                            ));
                        }
                        fields.insert(k, field);
                    }
                }
                let full = match &build_name {
                    Some(b) => format!("{b}.{t}.{name}"),
                    None => format!("{t}.{name}"),
                };
                builds.push(Build {
                    name: full,
                    builder_type: t.clone(),
                    fields,
                    origin: Origin::Hcl {
                        file: sf.path.clone(),
                        source_type: t,
                        source_name: n,
                    },
                });
            }
        }
    }
    Ok(Template {
        path: path.into(),
        dir,
        is_hcl: true,
        builds,
    })
}

fn vars_has(files: &[File], name: &str) -> bool {
    files.iter().any(|f| {
        f.body
            .get_blocks("variable")
            .any(|b| b.labels.first().is_some_and(|l| l.as_str() == name))
    })
}

/// A value given as a string (`-var`, `PKR_VAR_`): a string for `type = string` (or no type),
/// else parsed as an HCL expression, as Packer does.
fn typed(
    files: &[File],
    name: &str,
    raw: &str,
    ctx: &Context,
) -> Result<hcl::Value, TemplateError> {
    let ty = files
        .iter()
        .flat_map(|f| f.body.get_blocks("variable"))
        .find(|b| b.labels.first().is_some_and(|l| l.as_str() == name))
        .and_then(|b| b.body.get_attribute("type").map(|a| type_name(&a.value)));
    match ty.as_deref() {
        None | Some("string") => Ok(hcl::Value::String(raw.to_string())),
        Some(_) => {
            let expr: hcl::Expression = raw.parse().map_err(|e| {
                TemplateError::Flags(format!(
                    "variable {name}: {raw:?} is not a valid value: {e}"
                ))
            })?;
            expr.evaluate(ctx)
                .map_err(|e| TemplateError::Flags(format!("variable {name}: {e}")))
        }
    }
}

fn type_name(expr: &hcl_edit::expr::Expression) -> String {
    match expr {
        hcl_edit::expr::Expression::Variable(v) => v.as_str().to_string(),
        hcl_edit::expr::Expression::FuncCall(f) => f.name.name.as_str().to_string(),
        other => other.to_string().trim().to_string(),
    }
}

fn read_var_file(path: &Path, ctx: &Context) -> Result<Vec<(String, hcl::Value)>, TemplateError> {
    if path.extension().is_some_and(|e| e == "json") {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.into(),
            source,
        })?;
        let map: BTreeMap<String, hcl::Value> = serde_json::from_str(&text).map_err(|e| {
            TemplateError::at(
                format!("{}:{}", path.display(), e.line()),
                format!("malformed JSON: {e}"),
            )
        })?;
        return Ok(map.into_iter().collect());
    }
    let f = parse_file(path)?;
    f.body
        .attributes()
        .map(|a| {
            let v = eval(&a.value, ctx).map_err(|e| TemplateError::at(f.at(a.span()), e))?;
            Ok((a.key.as_str().to_string(), v))
        })
        .collect()
}

/// `locals { … }` blocks and `local "name" { expression = … }`, evaluated until nothing more
/// resolves (locals may refer to each other in any order). A local that never resolves is left
/// out: whatever uses it becomes unknown.
fn locals(files: &[File], ctx: &Context) -> hcl::Map<String, hcl::Value> {
    let mut pending: Vec<(String, hcl::Expression)> = Vec::new();
    for f in files {
        for block in f.body.get_blocks("locals") {
            for a in block.body.attributes() {
                pending.push((a.key.as_str().to_string(), a.value.clone().into()));
            }
        }
        for block in f.body.get_blocks("local") {
            if let (Some(name), Some(a)) =
                (block.labels.first(), block.body.get_attribute("expression"))
            {
                pending.push((name.as_str().to_string(), a.value.clone().into()));
            }
        }
    }
    let mut done = hcl::Map::new();
    loop {
        let mut local_ctx = ctx.clone();
        local_ctx.declare_var("local", hcl::Value::Object(done.clone()));
        let before = pending.len();
        pending.retain(|(name, expr)| match expr.evaluate(&local_ctx) {
            Ok(v) => {
                done.insert(name.clone(), v);
                false
            }
            Err(_) => true,
        });
        if pending.is_empty() || pending.len() == before {
            return done;
        }
    }
}

fn source_ref(s: &str) -> Option<(String, String)> {
    let (t, n) = s.split_once('.')?;
    Some((t.to_string(), n.to_string()))
}

/// A block body's attributes, evaluated, and its nested blocks as lists of objects (how Packer's
/// JSON templates spell `launch_block_device_mappings` and `source_ami_filter`).
fn block_fields(f: &File, body: &Body, ctx: &Context) -> BTreeMap<String, Field> {
    let mut out: BTreeMap<String, Field> = BTreeMap::new();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let value = match eval(&a.value, ctx) {
                    Ok(v) => Known::Value(serde_json::to_value(v).unwrap_or(Value::Null)),
                    Err(e) => Known::Unknown(e),
                };
                out.insert(
                    a.key.as_str().to_string(),
                    Field {
                        value,
                        at: f.at(a.span()),
                    },
                );
            }
            Structure::Block(b) => {
                let key = b.ident.as_str().to_string();
                let inner = block_fields(f, &b.body, ctx);
                let mut obj = serde_json::Map::new();
                let mut unknown = None;
                for (k, field) in inner {
                    match field.value {
                        Known::Value(v) => {
                            obj.insert(k, v);
                        }
                        Known::Unknown(why) => unknown = Some(why),
                    }
                }
                let entry = out.entry(key).or_insert_with(|| Field {
                    value: Known::Value(Value::Array(vec![])),
                    at: f.at(b.span()),
                });
                match (unknown, &mut entry.value) {
                    (Some(why), _) => entry.value = Known::Unknown(why),
                    (None, Known::Value(Value::Array(items))) => items.push(Value::Object(obj)),
                    _ => {}
                }
            }
        }
    }
    out
}

fn eval(expr: &hcl_edit::expr::Expression, ctx: &Context) -> Result<hcl::Value, String> {
    let e: hcl::Expression = expr.clone().into();
    e.evaluate(ctx).map_err(|err| {
        format!(
            "{} is only known when Packer runs ({err})",
            expr.to_string().trim()
        )
    })
}

fn eval_string(expr: &hcl_edit::expr::Expression, ctx: &Context) -> Result<String, String> {
    match eval(expr, ctx)? {
        hcl::Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}
