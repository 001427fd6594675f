//! The HCL2 functions Packer templates commonly use to compute Regions, keys and AMI ids. Only
//! functions whose result is known before the build are here: `timestamp()`, `uuidv4()` and
//! the like stay undeclared, so whatever uses them is reported as unknown.

use hcl::Value;
use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};

/// Declares the functions in a context.
pub fn declare(ctx: &mut Context) {
    let s = || ParamType::String;
    let any = || ParamType::Any;
    ctx.declare_func(
        "upper",
        FuncDef::new(|a| Ok(str_arg(&a, 0)?.to_uppercase().into()), [s()]),
    );
    ctx.declare_func(
        "lower",
        FuncDef::new(|a| Ok(str_arg(&a, 0)?.to_lowercase().into()), [s()]),
    );
    ctx.declare_func(
        "trimspace",
        FuncDef::new(|a| Ok(str_arg(&a, 0)?.trim().into()), [s()]),
    );
    ctx.declare_func(
        "tostring",
        FuncDef::new(|a| Ok(plain(&a[0]).into()), [any()]),
    );
    ctx.declare_func("tolist", FuncDef::new(|a| Ok(a[0].clone()), [any()]));
    ctx.declare_func("toset", FuncDef::new(|a| Ok(a[0].clone()), [any()]));
    ctx.declare_func("tomap", FuncDef::new(|a| Ok(a[0].clone()), [any()]));
    ctx.declare_func(
        "replace",
        FuncDef::new(
            |a| {
                Ok(str_arg(&a, 0)?
                    .replace(str_arg(&a, 1)?, str_arg(&a, 2)?)
                    .into())
            },
            [s(), s(), s()],
        ),
    );
    ctx.declare_func(
        "split",
        FuncDef::new(
            |a| {
                Ok(Value::Array(
                    str_arg(&a, 1)?
                        .split(str_arg(&a, 0)?)
                        .map(Value::from)
                        .collect(),
                ))
            },
            [s(), s()],
        ),
    );
    ctx.declare_func(
        "join",
        FuncDef::new(
            |a| {
                let items = a[1]
                    .as_array()
                    .ok_or("join: second argument must be a list")?;
                Ok(items
                    .iter()
                    .map(plain)
                    .collect::<Vec<_>>()
                    .join(str_arg(&a, 0)?)
                    .into())
            },
            [s(), any()],
        ),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder().variadic_param(any()).build(|a| {
            Ok(Value::Array(
                a.iter()
                    .flat_map(|l| l.as_array().cloned().unwrap_or_default())
                    .collect(),
            ))
        }),
    );
    ctx.declare_func(
        "coalesce",
        FuncDef::builder().variadic_param(any()).build(|a| {
            a.iter()
                .find(|v| !v.is_null() && v.as_str() != Some(""))
                .cloned()
                .ok_or_else(|| "coalesce: no non-empty argument".to_string())
        }),
    );
    ctx.declare_func(
        "lookup",
        FuncDef::builder()
            .param(any())
            .param(s())
            .variadic_param(any())
            .build(|a| {
                let key = str_arg(&a, 1)?;
                match a[0].as_object().and_then(|m| m.get(key)) {
                    Some(v) => Ok(v.clone()),
                    None => a
                        .get(2)
                        .cloned()
                        .ok_or_else(|| format!("lookup: no key {key:?}")),
                }
            }),
    );
    ctx.declare_func(
        "element",
        FuncDef::new(
            |a| {
                let items = a[0]
                    .as_array()
                    .ok_or("element: first argument must be a list")?;
                let i = a[1].as_u64().ok_or("element: index must be a number")? as usize;
                if items.is_empty() {
                    return Err("element: empty list".into());
                }
                Ok(items[i % items.len()].clone())
            },
            [any(), ParamType::Number],
        ),
    );
    ctx.declare_func(
        "length",
        FuncDef::new(
            |a| {
                let n = match &a[0] {
                    Value::Array(v) => v.len(),
                    Value::Object(m) => m.len(),
                    Value::String(s) => s.chars().count(),
                    _ => return Err("length: needs a list, map or string".into()),
                };
                Ok(Value::from(n as u64))
            },
            [any()],
        ),
    );
    ctx.declare_func(
        "contains",
        FuncDef::new(
            |a| Ok(a[0].as_array().is_some_and(|l| l.contains(&a[1])).into()),
            [any(), any()],
        ),
    );
    ctx.declare_func(
        "merge",
        FuncDef::builder().variadic_param(any()).build(|a| {
            let mut out = hcl::Map::new();
            for m in a.iter().filter_map(Value::as_object) {
                out.extend(m.clone());
            }
            Ok(Value::Object(out))
        }),
    );
    ctx.declare_func(
        "format",
        FuncDef::builder()
            .param(s())
            .variadic_param(any())
            .build(|a| {
                let mut args = a.iter().skip(1);
                let fmt = str_arg(&a, 0)?;
                let mut out = String::new();
                let mut chars = fmt.chars();
                while let Some(c) = chars.next() {
                    if c != '%' {
                        out.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('%') => out.push('%'),
                        Some('s' | 'd' | 'v') => {
                            out.push_str(&plain(args.next().ok_or("format: too few arguments")?))
                        }
                        other => {
                            return Err(format!(
                                "format: verb %{} is not supported",
                                other.unwrap_or(' ')
                            ));
                        }
                    }
                }
                Ok(out.into())
            }),
    );
}

fn str_arg(a: &FuncArgs, i: usize) -> Result<&str, String> {
    a.get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("argument {} must be a string", i + 1))
}

/// A value as text, without the quotes a string would get from `to_string`.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcl::eval::Evaluate;

    fn eval(src: &str) -> Value {
        let mut ctx = Context::new();
        declare(&mut ctx);
        let e: hcl::Expression = src.parse().unwrap();
        e.evaluate(&ctx).unwrap()
    }

    #[test]
    fn common_functions_compute_regions_and_keys() {
        assert_eq!(eval(r#"upper("a")"#), Value::from("A"));
        assert_eq!(eval(r#"join(",", ["a", "b"])"#), Value::from("a,b"));
        assert_eq!(
            eval(r#"format("alias/%s-%s", "team", "prod")"#),
            Value::from("alias/team-prod")
        );
        assert_eq!(eval(r#"lookup({a = "x"}, "b", "y")"#), Value::from("y"));
        assert_eq!(eval(r#"concat(["a"], ["b"])"#), eval(r#"["a", "b"]"#));
        assert_eq!(eval(r#"coalesce("", "k")"#), Value::from("k"));
    }

    #[test]
    fn runtime_functions_stay_unknown() {
        let mut ctx = Context::new();
        declare(&mut ctx);
        let e: hcl::Expression = "timestamp()".parse().unwrap();
        assert!(e.evaluate(&ctx).is_err());
    }
}
