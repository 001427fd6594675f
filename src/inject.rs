//! The temporary copy of the template that Packer runs when amiguard injects attributes.
//!
//! The user's files are never modified. The copy means exactly what the original meant, plus the
//! injected attributes:
//! - a JSON template or a single `.pkr.hcl` file is copied next to the original, as a hidden file
//!   (`.amiguard-…`), so that `{{template_dir}}`, `path.root` and relative paths resolve as before;
//! - an HCL2 folder is copied into a private temporary folder, with every `path.root` replaced by
//!   the original folder's path.
//!
//! The copy is private (0600; a folder 0700) and removed when the returned guard is dropped.
//! Interrupted runs remove it too: the caller keeps the guard alive across the child Packer and
//! ignores SIGINT while waiting (see `run`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Body};
use hcl_edit::visit_mut::{VisitMut, visit_expr_mut};
use hcl_edit::{Decorate, Ident};

use crate::decide::Change;
use crate::template::{Origin, Template, TemplateError, hcl};

/// A written copy; dropping it removes the file or folder.
#[derive(Debug)]
pub struct InjectedCopy {
    /// What to give Packer instead of the original template path.
    pub path: PathBuf,
    _guard: Guard,
}

#[derive(Debug)]
enum Guard {
    File(#[allow(dead_code)] tempfile::TempPath),
    Dir(#[allow(dead_code)] tempfile::TempDir),
}

/// The changes for each block, grouped the way they are written.
pub type Edits = Vec<(Origin, Vec<Change>)>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TemplateError + '_ {
    move |source| TemplateError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> TemplateError + '_ {
    move |source| TemplateError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the copy with every edit applied.
pub fn write_copy(template: &Template, edits: &Edits) -> Result<InjectedCopy, TemplateError> {
    if !template.is_hcl {
        let text = std::fs::read_to_string(&template.path).map_err(io_err(&template.path))?;
        let edited = edit_json(&text, edits)
            .map_err(|m| TemplateError::at(template.path.display().to_string(), m))?;
        return sibling(&template.path, ".json", &edited);
    }
    if !template.path.is_dir() {
        let file = hcl::parse_file(&template.path)?;
        let edited = edit_hcl(file.body, &template.path, edits)?;
        return sibling(&template.path, ".pkr.hcl", &edited.to_string());
    }
    folder_copy(template, edits)
}

/// A hidden file beside the original, created 0600 by `tempfile`.
fn sibling(original: &Path, suffix: &str, text: &str) -> Result<InjectedCopy, TemplateError> {
    let dir = original
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = original
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("template");
    let stem = stem.strip_suffix(suffix).unwrap_or(stem);
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".amiguard-{stem}-"))
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(write_err(dir))?;
    file.write_all(text.as_bytes())
        .map_err(write_err(file.path()))?;
    let path = file.into_temp_path();
    Ok(InjectedCopy {
        path: path.to_path_buf(),
        _guard: Guard::File(path),
    })
}

/// Sets the attributes on `builders[index]` of a JSON template.
pub fn edit_json(text: &str, edits: &Edits) -> Result<String, String> {
    let mut root: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    for (origin, changes) in edits {
        let Origin::Json { index } = origin else {
            continue;
        };
        let builder = root
            .get_mut("builders")
            .and_then(|b| b.get_mut(*index))
            .and_then(|b| b.as_object_mut())
            .ok_or_else(|| format!("builders[{index}] is not an object"))?;
        for c in changes {
            builder.insert(c.attribute.clone(), c.value.clone());
        }
    }
    let mut out = serde_json::to_string_pretty(&root).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok(out)
}

/// Adds the attributes to the `source` blocks of one HCL file.
pub fn edit_hcl(mut body: Body, file: &Path, edits: &Edits) -> Result<Body, TemplateError> {
    for (origin, changes) in edits {
        let Origin::Hcl {
            file: f,
            source_type,
            source_name,
        } = origin
        else {
            continue;
        };
        if f != file {
            continue;
        }
        let block = body
            .get_blocks_mut("source")
            .find(|b| b.has_exact_labels(&[source_type.as_str(), source_name.as_str()]))
            .ok_or_else(|| {
                TemplateError::at(
                    file.display().to_string(),
                    format!("source.{source_type}.{source_name} not found"),
                )
            })?;
        for c in changes {
            let mut attr = Attribute::new(Ident::new(c.attribute.as_str()), hcl_value(&c.value)?);
            attr.decor_mut().set_prefix("  ");
            block.body.push(attr);
        }
    }
    Ok(body)
}

fn hcl_value(v: &serde_json::Value) -> Result<Expression, TemplateError> {
    Ok(match v {
        serde_json::Value::Bool(b) => Expression::from(*b),
        serde_json::Value::String(s) => Expression::from(s.as_str()),
        other => {
            let text = match other {
                serde_json::Value::Object(m) => {
                    let items: Vec<String> = m
                        .iter()
                        .map(|(k, v)| {
                            format!("    {} = {}", serde_json::Value::from(k.as_str()), v)
                        })
                        .collect();
                    format!("{{\n{}\n  }}", items.join("\n"))
                }
                o => o.to_string(),
            };
            text.parse()
                .map_err(|e| TemplateError::Flags(format!("cannot write {text} as HCL: {e}")))?
        }
    })
}

/// Replaces `path.root` with the original folder, so the copy in another folder means the same.
struct PathRoot(String);

impl VisitMut for PathRoot {
    fn visit_expr_mut(&mut self, node: &mut Expression) {
        if let Expression::Traversal(t) = node {
            let is_root = matches!(&t.expr, Expression::Variable(v) if v.as_str() == "path")
                && t.operators.len() == 1
                && matches!(t.operators[0].value(), hcl_edit::expr::TraversalOperator::GetAttr(a) if a.as_str() == "root");
            if is_root {
                let decor = t.decor().clone();
                let mut lit = Expression::from(self.0.as_str());
                *lit.decor_mut() = decor;
                *node = lit;
                return;
            }
        }
        visit_expr_mut(self, node);
    }
}

fn folder_copy(template: &Template, edits: &Edits) -> Result<InjectedCopy, TemplateError> {
    let dir = tempfile::Builder::new()
        .prefix("amiguard-")
        .tempdir()
        .map_err(write_err(&std::env::temp_dir()))?;
    let root = template.dir.display().to_string();
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for path in hcl::template_files(&template.path)? {
        let file = hcl::parse_file(&path)?;
        let mut body = edit_hcl(file.body, &path, edits)?;
        PathRoot(root.clone()).visit_body_mut(&mut body);
        files.insert(path, body.to_string());
    }
    for entry in std::fs::read_dir(&template.path)
        .map_err(io_err(&template.path))?
        .flatten()
    {
        let p = entry.path();
        if p.to_string_lossy().ends_with(".auto.pkrvars.hcl") {
            let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
            files.insert(p, text);
        }
    }
    for (path, text) in files {
        let target = dir.path().join(path.file_name().unwrap_or_default());
        write_private(&target, &text)?;
    }
    Ok(InjectedCopy {
        path: dir.path().to_path_buf(),
        _guard: Guard::Dir(dir),
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), TemplateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err(path))?;
    f.write_all(text.as_bytes()).map_err(write_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(attribute: &str, value: serde_json::Value) -> Change {
        Change {
            attribute: attribute.into(),
            value,
            why: String::new(),
        }
    }

    #[test]
    fn hcl_edit_adds_attributes_to_the_named_source_only() {
        let src = "source \"amazon-ebs\" \"a\" {\n  region = \"r\"\n}\n\nsource \"amazon-ebs\" \"b\" {\n  region = \"r\" # keep\n}\n";
        let body = hcl_edit::parser::parse_body(src).unwrap();
        let origin = Origin::Hcl {
            file: "t.pkr.hcl".into(),
            source_type: "amazon-ebs".into(),
            source_name: "b".into(),
        };
        let edits = vec![(
            origin,
            vec![
                change("encrypt_boot", true.into()),
                change(
                    "region_kms_key_ids",
                    serde_json::json!({"us-east-1": "arn:k"}),
                ),
            ],
        )];
        let out = edit_hcl(body, Path::new("t.pkr.hcl"), &edits)
            .unwrap()
            .to_string();
        assert!(
            out.starts_with("source \"amazon-ebs\" \"a\" {\n  region = \"r\"\n}\n"),
            "{out}"
        );
        assert!(
            out.contains("region = \"r\" # keep\n  encrypt_boot = true\n"),
            "{out}"
        );
        let reparsed: ::hcl::Body = ::hcl::from_str(&out).unwrap();
        let b = reparsed.blocks().nth(1).unwrap();
        let map = b
            .body
            .attributes()
            .find(|a| a.key() == "region_kms_key_ids")
            .unwrap();
        assert_eq!(
            map.expr().to_string().replace(char::is_whitespace, ""),
            "{\"us-east-1\"=\"arn:k\"}"
        );
    }

    #[test]
    fn path_root_is_replaced_by_the_original_folder() {
        let mut body =
            hcl_edit::parser::parse_body("x = \"${path.root}/f\"\ny = path.root\n").unwrap();
        PathRoot("/orig".into()).visit_body_mut(&mut body);
        let mut other = hcl_edit::parser::parse_body("z = path.cwd\n").unwrap();
        PathRoot("/orig".into()).visit_body_mut(&mut other);
        assert_eq!(other.to_string(), "z = path.cwd\n");
        let v: ::hcl::Value =
            ::hcl::eval::from_str(&body.to_string(), &::hcl::eval::Context::new()).unwrap();
        assert_eq!(v.as_object().unwrap()["x"], ::hcl::Value::from("/orig/f"));
        assert_eq!(v.as_object().unwrap()["y"], ::hcl::Value::from("/orig"));
    }
}
