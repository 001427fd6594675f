//! Legacy JSON templates: `variables`, `-var`, `-var-file`, and `{{user}}` / `{{env}}` /
//! `{{template_dir}}` interpolation (facts §5, Templates).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

use super::{Build, Field, Inputs, Known, Origin, Template, TemplateError, line_of};

/// Reads a JSON template.
pub fn load(path: &Path, inputs: &Inputs) -> Result<Template, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.into(),
        source,
    })?;
    let root: Value = serde_json::from_str(&text).map_err(|e| {
        TemplateError::at(
            format!("{}:{}", path.display(), e.line()),
            format!("malformed JSON: {e}"),
        )
    })?;
    let lines = key_offsets(&text);
    let at = |p: &str| {
        lines
            .get(p)
            .map(|o| line_of(path, &text, *o))
            .unwrap_or_else(|| path.display().to_string())
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);

    let vars = variables(&root, inputs, &at)?;
    let Some(builders) = root.get("builders").and_then(Value::as_array) else {
        return Err(TemplateError::at(
            path.display().to_string(),
            "a JSON template needs a \"builders\" list",
        ));
    };
    let mut builds = Vec::new();
    for (index, builder) in builders.iter().enumerate() {
        let Some(obj) = builder.as_object() else {
            return Err(TemplateError::at(
                at(&format!("/builders/{index}")),
                "each builder must be an object",
            ));
        };
        let builder_type = obj
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&builder_type)
            .to_string();
        let fields = obj
            .iter()
            .map(|(k, v)| {
                let field = Field {
                    value: resolve(v, &vars, &dir, &inputs.env),
                    at: at(&format!("/builders/{index}/{k}")),
                };
                (k.clone(), field)
            })
            .collect();
        builds.push(Build {
            name,
            builder_type,
            fields,
            origin: Origin::Json { index },
        });
    }
    Ok(Template {
        path: path.into(),
        dir,
        is_hcl: false,
        builds,
    })
}

/// The user variables: defaults (with `{{env}}`), then `-var-file`s, then `-var`s.
fn variables(
    root: &Value,
    inputs: &Inputs,
    at: &dyn Fn(&str) -> String,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let mut vars = BTreeMap::new();
    let mut required = Vec::new();
    if let Some(decl) = root.get("variables").and_then(Value::as_object) {
        for (name, default) in decl {
            match default {
                Value::Null => required.push(name.clone()),
                Value::String(s) => {
                    match interpolate(s, &BTreeMap::new(), Path::new(""), &inputs.env, true) {
                        Known::Value(Value::String(v)) => {
                            vars.insert(name.clone(), v);
                        }
                        _ => {
                            return Err(TemplateError::at(
                                at(&format!("/variables/{name}")),
                                format!(
                                    "variable {name}: only {{{{env}}}} may be used in a variable default"
                                ),
                            ));
                        }
                    }
                }
                other => {
                    vars.insert(name.clone(), other.to_string());
                }
            }
        }
    }
    for file in &inputs.var_files {
        let text = std::fs::read_to_string(file).map_err(|source| TemplateError::Read {
            path: file.clone(),
            source,
        })?;
        let values: BTreeMap<String, Value> = serde_json::from_str(&text).map_err(|e| {
            TemplateError::at(
                format!("{}:{}", file.display(), e.line()),
                format!("a -var-file for a JSON template must be a JSON object of strings: {e}"),
            )
        })?;
        for (k, v) in values {
            vars.insert(
                k,
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string()),
            );
        }
    }
    for (k, v) in &inputs.vars {
        vars.insert(k.clone(), v.clone());
    }
    let missing: Vec<&String> = required.iter().filter(|n| !vars.contains_key(*n)).collect();
    if let Some(first) = missing.first() {
        return Err(TemplateError::at(
            at(&format!("/variables/{first}")),
            format!(
                "required variable not set: {} (give it with -var {first}=VALUE or a -var-file)",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(vars)
}

/// Resolves every string inside a builder value (no `{{env}}` there, as in Packer); any unknown
/// part makes the whole value unknown.
fn resolve(
    v: &Value,
    vars: &BTreeMap<String, String>,
    dir: &Path,
    env: &BTreeMap<String, String>,
) -> Known {
    match v {
        Value::String(s) => interpolate(s, vars, dir, env, false),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                match resolve(i, vars, dir, env) {
                    Known::Value(v) => out.push(v),
                    unknown => return unknown,
                }
            }
            Known::Value(Value::Array(out))
        }
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, i) in m {
                match resolve(i, vars, dir, env) {
                    Known::Value(v) => {
                        out.insert(k.clone(), v);
                    }
                    unknown => return unknown,
                }
            }
            Known::Value(Value::Object(out))
        }
        other => Known::Value(other.clone()),
    }
}

/// Packer's Go-template interpolation for the functions that can be known before the build.
pub fn interpolate(
    s: &str,
    vars: &BTreeMap<String, String>,
    dir: &Path,
    env: &BTreeMap<String, String>,
    allow_env: bool,
) -> Known {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            return Known::Unknown(format!("unterminated {{{{ in {s:?}"));
        };
        let inner = rest[start + 2..start + end].trim();
        let mut words = inner.splitn(2, char::is_whitespace);
        let func = words.next().unwrap_or_default();
        let arg = words
            .next()
            .map(|a| a.trim().trim_matches(|c| c == '`' || c == '"'));
        match (func, arg) {
            ("user", Some(name)) => match vars.get(name) {
                Some(v) => out.push_str(v),
                None => return Known::Unknown(format!("{{{{user `{name}`}}}} names no variable")),
            },
            ("env", Some(name)) if allow_env => {
                out.push_str(env.get(name).map(String::as_str).unwrap_or(""))
            }
            ("template_dir", None) => out.push_str(&dir.display().to_string()),
            _ => return Known::Unknown(format!("{{{{{inner}}}}} is only known when Packer runs")),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Known::Value(Value::String(out))
}

/// The byte offset of every object key in a JSON text, by JSON pointer (`/builders/0/region`).
/// serde_json keeps no positions; this small scanner gives messages their line numbers.
pub fn key_offsets(text: &str) -> HashMap<String, usize> {
    enum Frame {
        Object { path: String, key: Option<String> },
        Array { path: String, index: usize },
    }
    let mut out = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let child_path = |stack: &Vec<Frame>| -> String {
        match stack.last() {
            Some(Frame::Object { path, key: Some(k) }) => format!("{path}/{k}"),
            Some(Frame::Array { path, index }) => format!("{path}/{index}"),
            _ => String::new(),
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                let mut s = Vec::new();
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    if i < bytes.len() {
                        s.push(bytes[i]);
                    }
                    i += 1;
                }
                let s = String::from_utf8_lossy(&s).into_owned();
                if let Some(Frame::Object { path, key }) = stack.last_mut()
                    && key.is_none()
                {
                    out.insert(format!("{path}/{s}"), start);
                    *key = Some(s);
                }
            }
            b'{' => {
                let path = child_path(&stack);
                stack.push(Frame::Object { path, key: None });
            }
            b'[' => {
                let path = child_path(&stack);
                stack.push(Frame::Array { path, index: 0 });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, .. }) => *key = None,
                Some(Frame::Array { index, .. }) => *index += 1,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_offsets_find_nested_keys_by_pointer() {
        let text = "{\n \"builders\": [\n  {\"type\": \"x\"},\n  {\n   \"encrypt_boot\": \"a,}\"\n  }\n ]\n}";
        let o = key_offsets(text);
        assert_eq!(
            line_of(Path::new("t.json"), text, o["/builders/1/encrypt_boot"]),
            "t.json:5"
        );
        assert_eq!(
            line_of(Path::new("t.json"), text, o["/builders/0/type"]),
            "t.json:3"
        );
    }

    #[test]
    fn interpolates_user_variables_and_leaves_runtime_functions_unknown() {
        let vars: BTreeMap<String, String> = [("k".to_string(), "alias/team".to_string())].into();
        let env = BTreeMap::new();
        assert_eq!(
            interpolate("{{user `k`}}", &vars, Path::new("/t"), &env, false),
            Known::Value("alias/team".into())
        );
        assert_eq!(
            interpolate("{{ user \"k\" }}-x", &vars, Path::new("/t"), &env, false),
            Known::Value("alias/team-x".into())
        );
        assert!(matches!(
            interpolate("ami-{{timestamp}}", &vars, Path::new("/t"), &env, false),
            Known::Unknown(_)
        ));
        assert!(matches!(
            interpolate("{{env `HOME`}}", &vars, Path::new("/t"), &env, false),
            Known::Unknown(_)
        ));
    }
}
