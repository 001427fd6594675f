//! `amiguard plan` end to end against the local AWS twin: the seed's cases under each intent,
//! injection into an exact copy, refusals that launch nothing, and every error path's exit code.

mod common;

use common::*;
use serde_json::{Value, json};

fn plan(twin: &Twin, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    twin.amiguard(dir)
        .arg("plan")
        .args(["--format", "json"])
        .args(args)
        .output()
        .unwrap()
}

fn region<'a>(report: &'a Value, build: usize, region: &str) -> &'a Value {
    report["builds"][build]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == region)
        .unwrap()
}

fn codes(report: &Value) -> Vec<String> {
    report["builds"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| s(&p["code"]).to_string())
        .collect()
}

#[test]
fn baseline_meets_unencrypted_without_changes() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--ebd", "off"]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"encrypt_boot": false}),
        ),
    );
    let out = plan(
        &twin,
        dir.path(),
        &["--intent", "unencrypted", t.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = json_report(&out);
    assert_eq!(r["verdict"], "ok");
    assert_eq!(
        region(&r, 0, R)["predicted"],
        json!({"encrypted": false, "kms_key_arn": null, "key_manager": null})
    );
    assert_eq!(r["builds"][0]["source_ami"], env["source_ami"]);
}

#[test]
fn case1_shared_ami_on_aws_managed_key_is_refused_before_any_launch() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--ebd", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"encrypt_boot": false, "ami_users": [OTHER_ACCOUNT]}),
        ),
    );
    let out = plan(&twin, dir.path(), &[t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let r = json_report(&out);
    assert_eq!(r["verdict"], "refused");
    assert_eq!(r["builds"][0]["intent"], "shareable");
    assert_eq!(region(&r, 0, R)["predicted"]["key_manager"], "AWS");
    assert!(codes(&r).contains(&"aws_managed_key".to_string()), "{r}");
    let fix = s(&r["builds"][0]["problems"][0]["fix"]);
    assert!(
        fix.contains("--kms-key") && fix.contains("aws ec2 modify-ebs-default-kms-key-id"),
        "{fix}"
    );
    assert_eq!(twin.instances(&[R]), 0);
}

#[test]
fn case1_unencrypted_intent_is_refused_naming_ebd_and_the_command() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--ebd", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"encrypt_boot": false}),
        ),
    );
    let out = plan(
        &twin,
        dir.path(),
        &["--intent", "unencrypted", t.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3));
    let r = json_report(&out);
    let p = &r["builds"][0]["problems"][0];
    assert_eq!(p["code"], "ebd_on");
    assert!(
        s(&p["fix"])
            .starts_with("aws ec2 disable-ebs-encryption-by-default --region ap-northeast-1")
    );
    assert_eq!(region(&r, 0, R)["predicted"]["encrypted"], true);
    assert_eq!(twin.instances(&[R]), 0);
}

#[test]
fn case2_encrypted_source_refuses_unencrypted_and_predicts_the_source_key() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--source", "aws-managed"]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"encrypt_boot": "false"}),
        ),
    );
    let out = plan(
        &twin,
        dir.path(),
        &["--intent", "unencrypted", t.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3));
    let r = json_report(&out);
    assert_eq!(codes(&r), vec!["encrypted_source"]);
    let src_key = twin.snapshots(R, s(&env["source_ami"]))[0]["kms_key_id"].clone();
    assert_eq!(region(&r, 0, R)["predicted"]["kms_key_arn"], src_key);
}

#[test]
fn case3_template_already_meets_cmk() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--ebd", "on"]);
    let cmk = s(&env["cmk_arn"][R]).to_string();
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"encrypt_boot": true, "kms_key_id": "alias/amiguard-test"}),
        ),
    );
    let out = plan(
        &twin,
        dir.path(),
        &["--intent", "cmk", "--kms-key", &cmk, t.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let r = json_report(&out);
    assert_eq!(r["verdict"], "ok");
    assert_eq!(
        region(&r, 0, R)["predicted"],
        json!({"encrypted": true, "kms_key_arn": cmk, "key_manager": "CUSTOMER"})
    );
}

#[test]
fn cmk_injection_copy_is_the_original_plus_the_change() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--region", R2, "--ebd", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let original = builder(
        &twin.endpoint,
        s(&env["source_ami"]),
        json!({"ami_regions": [R2], "ami_users": [OTHER_ACCOUNT]}),
    );
    let t = json_template(dir.path(), "t.json", original.clone());
    let before = std::fs::read(&t).unwrap();
    let copy = dir.path().join("copy.json");
    let out = plan(
        &twin,
        dir.path(),
        &[
            "--intent",
            "cmk",
            "--kms-key",
            "alias/amiguard-test",
            "--emit-copy",
            copy.to_str().unwrap(),
            t.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let r = json_report(&out);
    assert_eq!(r["verdict"], "injected");
    let changes: Vec<&str> = r["builds"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["attribute"]))
        .collect();
    assert_eq!(
        changes,
        vec!["encrypt_boot", "kms_key_id", "region_kms_key_ids"]
    );
    for reg in [R, R2] {
        assert_eq!(
            region(&r, 0, reg)["predicted"]["kms_key_arn"],
            env["cmk_arn"][reg]
        );
    }
    // The user's file is untouched; the copy is the original plus exactly the change.
    assert_eq!(std::fs::read(&t).unwrap(), before);
    let mut copied: Value = serde_json::from_slice(&std::fs::read(&copy).unwrap()).unwrap();
    let b = copied["builders"][0].as_object_mut().unwrap();
    assert_eq!(b.remove("encrypt_boot"), Some(json!(true)));
    assert_eq!(b.remove("kms_key_id"), Some(env["cmk_arn"][R].clone()));
    assert_eq!(
        b.remove("region_kms_key_ids"),
        Some(json!({ R2: env["cmk_arn"][R2] }))
    );
    assert_eq!(copied, json!({ "builders": [original] }));
    // Nothing else is left behind next to the template.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".amiguard-")),
        "{names:?}"
    );
}

#[test]
fn encrypt_boot_false_under_cmk_is_refused_not_overwritten() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"encrypt_boot": false}),
        ),
    );
    let out = plan(
        &twin,
        dir.path(),
        &[
            "--intent",
            "cmk",
            "--kms-key",
            "alias/amiguard-test",
            t.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let r = json_report(&out);
    let p = &r["builds"][0]["problems"][0];
    assert_eq!(p["code"], "contradiction");
    assert!(s(&p["message"]).contains("t.json:"), "{p}");
    assert!(r["builds"][0]["changes"].as_array().unwrap().is_empty());
}

#[test]
fn cmk_key_missing_in_a_destination_region_is_refused() {
    let twin = Twin::start();
    // The key exists only in the build Region.
    let env = twin.scenario(&["--region", R]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"ami_regions": [R2]}),
        ),
    );
    let out = plan(
        &twin,
        dir.path(),
        &[
            "--intent",
            "cmk",
            "--kms-key",
            "alias/amiguard-test",
            t.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let r = json_report(&out);
    assert!(
        r["builds"][0]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "key_missing" && s(&p["message"]).contains(R2)),
        "{r}"
    );
}

#[test]
fn encrypted_intent_injects_encrypt_boot_and_predicts_default_keys_in_every_region() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--region", R2]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"ami_regions": [R2]}),
        ),
    );
    let out = plan(
        &twin,
        dir.path(),
        &["--intent", "encrypted", t.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));
    let r = json_report(&out);
    assert_eq!(r["verdict"], "injected");
    for reg in [R, R2] {
        assert_eq!(
            region(&r, 0, reg)["predicted"]["key_manager"],
            "AWS",
            "{reg}"
        );
    }
}

#[test]
fn any_intent_reports_without_refusing() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--ebd", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"ami_users": [OTHER_ACCOUNT]}),
        ),
    );
    let out = plan(&twin, dir.path(), &["--intent", "any", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_report(&out)["verdict"], "ok");
}

const HCL: &str = r#"
variable "region" {
  type    = string
  default = "ap-northeast-1"
}
variable "share_with" {
  type = list(string)
}
locals {
  name = "golden-${var.region}"
}

source "amazon-ebs" "golden" {
  region                 = var.region
  source_ami             = "SOURCE"
  instance_type          = "t3.micro"
  ami_name               = "${local.name}-${formatdate("YYYYMMDD", timestamp())}"
  communicator           = "none"
  custom_endpoint_ec2    = "ENDPOINT"
  skip_region_validation = true
  ami_users              = var.share_with
  tags = {
    Dir = path.root
  }
}

build {
  sources = ["source.amazon-ebs.golden"]
}
"#;

#[test]
fn hcl2_shareable_injection_keeps_everything_else_identical() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--ebd", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("golden.pkr.hcl");
    std::fs::write(
        &t,
        HCL.replace("SOURCE", s(&env["source_ami"]))
            .replace("ENDPOINT", &twin.endpoint),
    )
    .unwrap();
    let copy = dir.path().join("copy.pkr.hcl");
    let out = twin
        .amiguard(dir.path())
        .env("PKR_VAR_share_with", format!("[\"{OTHER_ACCOUNT}\"]"))
        .args([
            "plan",
            "--format",
            "json",
            "--kms-key",
            "alias/amiguard-test",
            "--emit-copy",
            copy.to_str().unwrap(),
            "golden.pkr.hcl",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r = json_report(&out);
    assert_eq!(r["builds"][0]["name"], "amazon-ebs.golden");
    assert_eq!(r["builds"][0]["intent"], "shareable");
    assert_eq!(
        region(&r, 0, R)["predicted"]["kms_key_arn"],
        env["cmk_arn"][R]
    );
    // Load both: the copy is the original plus the two attributes.
    let original: hcl::Body = hcl::from_str(&std::fs::read_to_string(&t).unwrap()).unwrap();
    let mut copied: hcl::Body = hcl::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
    for structure in copied.iter_mut() {
        if let hcl::Structure::Block(b) = structure
            && b.identifier() == "source"
        {
            let keep: Vec<hcl::Structure> = b
                .body
                .iter()
                .filter(|s| !matches!(s, hcl::Structure::Attribute(a) if a.key() == "encrypt_boot" || a.key() == "kms_key_id"))
                .cloned()
                .collect();
            let added = b.body.iter().count() - keep.len();
            assert_eq!(added, 2);
            b.body = hcl::Body::from(keep);
        }
    }
    assert_eq!(copied, original);
}

#[test]
fn hcl2_folder_with_auto_vars_and_var_file_resolves_like_packer() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R2]);
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tpl");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("golden.pkr.hcl"),
        HCL.replace("SOURCE", s(&env["source_ami"]))
            .replace("ENDPOINT", &twin.endpoint),
    )
    .unwrap();
    std::fs::write(
        folder.join("region.auto.pkrvars.hcl"),
        "region = \"eu-west-1\"\nshare_with = []\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prod.pkrvars.hcl"),
        format!("region = \"{R2}\"\n"),
    )
    .unwrap();
    let out = twin.run(
        dir.path(),
        &[
            "plan",
            "--format",
            "json",
            "--intent",
            "unencrypted",
            "-var-file",
            "prod.pkrvars.hcl",
            "tpl",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r = json_report(&out);
    assert_eq!(r["builds"][0]["region"], R2);
    assert_eq!(r["builds"][0]["verdict"], "ok");
}

#[test]
fn source_ami_filter_is_resolved_most_recent_first() {
    let twin = Twin::start();
    // Two matching images; the extra one is registered last, so it is the most recent.
    let env = twin.scenario(&["--region", R, "--extra-source", "aws-managed"]);
    let dir = tempfile::tempdir().unwrap();
    let template = |most_recent: bool| {
        let filter = json!({"filters": {"name": "amiguard-source-*"}, "owners": ["self"], "most_recent": most_recent});
        let mut b = builder(&twin.endpoint, "", json!({ "source_ami_filter": filter }));
        b.as_object_mut().unwrap().remove("source_ami");
        json_template(dir.path(), "t.json", b)
    };
    let t = template(true);
    let out = plan(&twin, dir.path(), &["--intent", "any", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = json_report(&out);
    assert_eq!(r["builds"][0]["source_ami"], env["extra_source_ami"]);
    // And the prediction follows that image: its snapshot is on aws/ebs.
    assert_eq!(region(&r, 0, R)["predicted"]["key_manager"], "AWS");
    let t = template(false);
    let out = twin.run(dir.path(), &["plan", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("matches 2 images"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn four_regions_are_predicted_each_with_its_own_default_key() {
    let twin = Twin::start();
    let regions = ["ap-northeast-1", "us-east-1", "eu-west-1", "us-west-2"];
    let mut args = vec![];
    for r in regions {
        args.extend(["--region", r]);
    }
    args.extend(["--ebd", "on"]);
    let env = twin.scenario(&args);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"ami_regions": &regions[1..]}),
        ),
    );
    let out = plan(
        &twin,
        dir.path(),
        &[
            "--intent",
            "cmk",
            "--kms-key",
            "alias/amiguard-test",
            t.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let r = json_report(&out);
    for reg in regions {
        assert_eq!(
            region(&r, 0, reg)["predicted"]["kms_key_arn"],
            env["cmk_arn"][reg],
            "{reg}"
        );
    }
}

#[test]
fn human_output_says_why_and_what_to_do() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--ebd", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"encrypt_boot": false, "ami_users": [OTHER_ACCOUNT]}),
        ),
    );
    let out = twin.run(dir.path(), &["plan", t.to_str().unwrap()]);
    let o = text(&out.stdout);
    assert!(o.contains("EBS encryption by default is on in ap-northeast-1 with the AWS managed key aws/ebs; Packer cannot override it"), "{o}");
    assert!(o.contains("fix: give a customer managed key"), "{o}");
    assert!(o.contains("verdict: refused"), "{o}");
}

#[test]
fn report_file_is_written_with_the_documented_fields() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(&twin.endpoint, s(&env["source_ami"]), json!({})),
    );
    let report = dir.path().join("r.json");
    let out = twin.run(
        dir.path(),
        &[
            "plan",
            "--report",
            report.to_str().unwrap(),
            "--intent",
            "encrypted",
            t.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    for key in ["verdict", "intent", "builds"] {
        assert!(r.get(key).is_some(), "{key}");
    }
    let b = &r["builds"][0];
    for key in [
        "name",
        "region",
        "source_ami",
        "changes",
        "problems",
        "regions",
    ] {
        assert!(b.get(key).is_some(), "{key}");
    }
    let c = &b["changes"][0];
    assert_eq!(
        (c["attribute"].clone(), c["value"].clone()),
        (json!("encrypt_boot"), json!(true))
    );
}

// Errors: a clear message and the documented exit code, never a panic.

#[test]
fn malformed_json_exits_2_with_file_and_line() {
    let twin = Twin::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        "{\n  \"builders\": [\n    {\"type\": \"amazon-ebs\",}\n  ]\n}\n",
    )
    .unwrap();
    let out = twin.run(dir.path(), &["plan", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(e.starts_with("amiguard: bad.json:3: malformed JSON"), "{e}");
}

#[test]
fn malformed_hcl_and_missing_variable_exit_2_with_file_and_line() {
    let twin = Twin::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.pkr.hcl"),
        "source \"amazon-ebs\" \"x\" {\n  region = \n}\n",
    )
    .unwrap();
    let out = twin.run(dir.path(), &["plan", "bad.pkr.hcl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("bad.pkr.hcl:"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(
        dir.path().join("v.pkr.hcl"),
        "\nvariable \"k\" {\n  type = string\n}\n",
    )
    .unwrap();
    let out = twin.run(dir.path(), &["plan", "v.pkr.hcl"]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains("v.pkr.hcl:2") && e.contains("variable k has no value"),
        "{e}"
    );
}

#[test]
fn unknown_only_name_exits_2_listing_the_builds() {
    let twin = Twin::start();
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(&twin.endpoint, "ami-1", json!({"name": "golden"})),
    );
    let out = twin.run(dir.path(), &["plan", "-only=nope", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("matches no build (builds: golden)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_source_ami_exits_2_naming_where_it_is_set() {
    let twin = Twin::start();
    twin.scenario(&["--region", R]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(&twin.endpoint, "ami-0000000000000000", json!({})),
    );
    let out = twin.run(dir.path(), &["plan", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains("t.json:") && e.contains("does not exist in ap-northeast-1"),
        "{e}"
    );
}

#[test]
fn a_runtime_value_that_decides_the_outcome_is_unknown_and_refused() {
    let twin = Twin::start();
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(&twin.endpoint, "ami-{{timestamp}}", json!({})),
    );
    let out = plan(
        &twin,
        dir.path(),
        &["--intent", "encrypted", t.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3));
    let r = json_report(&out);
    let p = &r["builds"][0]["problems"][0];
    assert_eq!(p["code"], "unknown_value");
    assert!(
        s(&p["message"]).starts_with("source_ami (") && s(&p["message"]).contains("timestamp"),
        "{p}"
    );
}

#[test]
fn a_missing_iam_permission_exits_5_naming_it() {
    let twin = Twin::start_with(&["--deny", "GetEbsEncryptionByDefault"]);
    let env = twin.scenario(&["--region", R]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(&twin.endpoint, s(&env["source_ami"]), json!({})),
    );
    let out = twin.run(dir.path(), &["plan", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let e = text(&out.stderr);
    assert!(
        e.contains("ec2:GetEbsEncryptionByDefault in ap-northeast-1 failed")
            && e.contains("missing IAM permission ec2:GetEbsEncryptionByDefault"),
        "{e}"
    );
}

#[test]
fn an_unreachable_endpoint_exits_5() {
    let twin = Twin::start();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback.
    let t = json_template(
        dir.path(),
        "t.json",
        builder("http://127.0.0.1:9", "ami-1", json!({})),
    );
    let out = twin
        .amiguard(dir.path())
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(["plan", t.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot reach the endpoint"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn intent_cmk_without_a_key_is_a_usage_error() {
    let twin = Twin::start();
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(&twin.endpoint, "ami-1", json!({})),
    );
    let out = twin.run(
        dir.path(),
        &["plan", "--intent", "cmk", t.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("intent cmk needs a key"));
}

#[test]
fn other_builders_are_listed_as_not_checked() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.json");
    let doc = json!({"builders": [builder(&twin.endpoint, s(&env["source_ami"]), json!({})), {"type": "null", "communicator": "none"}]});
    std::fs::write(&p, doc.to_string()).unwrap();
    let out = plan(&twin, dir.path(), &["--intent", "any", "t.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json_report(&out)["not_checked"], json!(["null"]));
}
