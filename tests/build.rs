//! `amiguard build` and `amiguard verify` end to end: the real Packer building against the twin,
//! the snapshots read back from the twin, every exit path, interrupts included.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn build(twin: &Twin, dir: &Path, args: &[&str]) -> Output {
    twin.amiguard(dir).arg("build").args(args).output().unwrap()
}

fn report(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("the report was written"))
        .unwrap()
}

fn actual<'a>(r: &'a Value, region: &str) -> &'a Value {
    let regions = r["builds"][0]["regions"].as_array().unwrap();
    &regions.iter().find(|x| x["region"] == region).unwrap()["actual"]
}

/// No file or folder amiguard made is left: beside the template or in the temp folder.
fn assert_no_temp_left(dir: &Path, tmp: &Path) {
    for d in [dir, tmp] {
        let left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".amiguard-") || n.starts_with("amiguard-"))
            .collect();
        assert!(left.is_empty(), "left behind in {}: {left:?}", d.display());
    }
}

#[test]
fn shared_ami_on_aws_managed_key_is_refused_and_packer_never_runs() {
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
    let started = Instant::now();
    let out = build(
        &twin,
        dir.path(),
        &["--report", "report.json", t.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).is_empty(),
        "Packer printed: {}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("fix: give a customer managed key"));
    assert_eq!(twin.instances(&[R]), 0);
    assert_eq!(report(dir.path())["verdict"], "refused");
    eprintln!("refused in {:?}", started.elapsed());
}

#[test]
fn shared_ami_with_a_key_is_injected_built_and_verified_in_every_region() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--region", R2, "--ebd", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(
            &twin.endpoint,
            s(&env["source_ami"]),
            json!({"ami_regions": [R2], "ami_users": [OTHER_ACCOUNT]}),
        ),
    );
    let before = std::fs::read(&t).unwrap();
    let out = twin
        .amiguard(dir.path())
        .env("TMPDIR", tmp.path())
        .args([
            "build",
            "--kms-key",
            "alias/amiguard-test",
            "--report",
            "report.json",
            "t.json",
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
    assert!(
        text(&out.stdout).contains("Copying/Encrypting AMI"),
        "Packer's output is relayed"
    );
    let r = report(dir.path());
    assert_eq!(r["verdict"], "verified");
    for region in [R, R2] {
        let a = actual(&r, region);
        let ami = s(&a["ami_id"]);
        let snaps = twin.snapshots(region, ami);
        assert_eq!(
            snaps[0]["kms_key_id"], env["cmk_arn"][region],
            "{region}: the twin holds the CMK"
        );
        assert_eq!(a["snapshots"][0]["kms_key_arn"], env["cmk_arn"][region]);
        assert_eq!(a["snapshots"][0]["key_manager"], "CUSTOMER");
        assert_eq!(a["shared_with"], json!([OTHER_ACCOUNT]));
    }
    assert_eq!(
        std::fs::read(&t).unwrap(),
        before,
        "the user's template is untouched"
    );
    assert_no_temp_left(dir.path(), tmp.path());
}

#[test]
fn cmk_injection_in_an_hcl2_folder_is_verified_against_the_key_arn() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--ebd", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let folder = dir.path().join("golden");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("source.pkr.hcl"),
        format!(
            r#"variable "region" {{
  type = string
}}
source "amazon-ebs" "golden" {{
  region                 = var.region
  source_ami             = "{}"
  instance_type          = "t3.micro"
  ami_name               = "golden-${{formatdate("YYYYMMDDhhmmss", timestamp())}}"
  communicator           = "none"
  custom_endpoint_ec2    = "{}"
  skip_region_validation = true
  tags = {{
    Root = path.root
  }}
}}
"#,
            s(&env["source_ami"]),
            twin.endpoint
        ),
    )
    .unwrap();
    std::fs::write(
        folder.join("build.pkr.hcl"),
        "build {\n  sources = [\"source.amazon-ebs.golden\"]\n}\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("vars.auto.pkrvars.hcl"),
        format!("region = \"{R}\"\n"),
    )
    .unwrap();
    let out = twin
        .amiguard(dir.path())
        .env("TMPDIR", tmp.path())
        .args([
            "build",
            "--intent",
            "cmk",
            "--kms-key",
            "alias/amiguard-test",
            "--report",
            "report.json",
            "golden",
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
    let r = report(dir.path());
    assert_eq!(r["verdict"], "verified");
    assert_eq!(r["builds"][0]["changes"].as_array().unwrap().len(), 2);
    let ami = s(&actual(&r, R)["ami_id"]).to_string();
    assert_eq!(twin.snapshots(R, &ami)[0]["kms_key_id"], env["cmk_arn"][R]);
    assert_no_temp_left(dir.path(), tmp.path());
}

/// Each seed case (facts §6) under the intents that matter for it: the exit code, and the final
/// snapshot as the twin holds it.
#[test]
fn every_seed_case_under_each_relevant_intent_ends_as_it_should() {
    // (case, scenario flags, template, intent, exit, final key: "none" | "aws" | "source" | "cmk")
    type Row = (
        &'static str,
        Vec<&'static str>,
        Value,
        &'static str,
        i32,
        &'static str,
    );
    let rows: Vec<Row> = vec![
        (
            "baseline",
            vec!["--ebd", "off"],
            json!({"encrypt_boot": false}),
            "unencrypted",
            0,
            "none",
        ),
        (
            "case 1",
            vec!["--ebd", "on"],
            json!({"encrypt_boot": false}),
            "unencrypted",
            3,
            "-",
        ),
        (
            "case 1",
            vec!["--ebd", "on"],
            json!({"encrypt_boot": false}),
            "encrypted",
            0,
            "aws",
        ),
        ("case 1", vec!["--ebd", "on"], json!({}), "cmk", 0, "cmk"),
        (
            "case 2",
            vec!["--source", "aws-managed"],
            json!({"encrypt_boot": false}),
            "unencrypted",
            3,
            "-",
        ),
        (
            "case 2",
            vec!["--source", "aws-managed"],
            json!({"encrypt_boot": false}),
            "encrypted",
            0,
            "source",
        ),
        (
            "case 3",
            vec!["--ebd", "on"],
            json!({"encrypt_boot": true, "kms_key_id": "alias/amiguard-test"}),
            "cmk",
            0,
            "cmk",
        ),
    ];
    for (case, flags, settings, intent, exit, key) in rows {
        let twin = Twin::start();
        let mut args = vec!["--region", R];
        args.extend(flags);
        let env = twin.scenario(&args);
        let dir = tempfile::tempdir().unwrap();
        let t = json_template(
            dir.path(),
            "t.json",
            builder(&twin.endpoint, s(&env["source_ami"]), settings),
        );
        let out = build(
            &twin,
            dir.path(),
            &[
                "--intent",
                intent,
                "--kms-key",
                "alias/amiguard-test",
                "--report",
                "report.json",
                t.to_str().unwrap(),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{case} under {intent}: {}",
            text(&out.stderr)
        );
        if exit != 0 {
            assert_eq!(
                twin.instances(&[R]),
                0,
                "{case} under {intent} launched nothing"
            );
            continue;
        }
        let r = report(dir.path());
        assert_eq!(r["verdict"], "verified", "{case} under {intent}");
        let snap = &twin.snapshots(R, s(&actual(&r, R)["ami_id"]))[0];
        let source_key = twin.snapshots(R, s(&env["source_ami"]))[0]["kms_key_id"].clone();
        match key {
            "none" => assert_eq!(snap["encrypted"], false, "{case} under {intent}"),
            "cmk" => assert_eq!(
                snap["kms_key_id"], env["cmk_arn"][R],
                "{case} under {intent}"
            ),
            "source" => assert_eq!(snap["kms_key_id"], source_key, "{case} under {intent}"),
            _ => assert_eq!(
                actual(&r, R)["snapshots"][0]["key_manager"],
                "AWS",
                "{case} under {intent}"
            ),
        }
    }
}

#[test]
fn machine_readable_stdout_stays_machine_readable_and_is_still_verified() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R]);
    let dir = tempfile::tempdir().unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(&twin.endpoint, s(&env["source_ami"]), json!({})),
    );
    let out = twin.run(
        dir.path(),
        &[
            "-machine-readable",
            "build",
            "--intent",
            "unencrypted",
            "--report",
            "report.json",
            t.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in stdout.lines() {
        assert!(
            line.split(',').next().unwrap().parse::<u64>().is_ok(),
            "not a machine-readable line: {line:?}"
        );
    }
    assert_eq!(report(dir.path())["verdict"], "verified");
    assert_eq!(
        actual(&report(dir.path()), R)["snapshots"][0]["encrypted"],
        false
    );
}

#[test]
fn a_failing_packer_passes_its_exit_code_through_and_nothing_is_verified() {
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
    // Intent `any` predicts the failure but does not refuse: Packer fails at the sharing step.
    let out = build(&twin, dir.path(), &["--intent", "any", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("AWS Managed CMK can't be shared"), "{all}");
    assert!(text(&out.stderr).contains("nothing was verified"));
}

#[test]
fn drift_during_the_build_is_a_violation_exit_4() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R]);
    let dir = tempfile::tempdir().unwrap();
    // A "packer" that turns EBS encryption by default on in the account, then builds: the
    // account changed between the plan and the build.
    let wrapper = dir.path().join("packer-with-drift");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nAWS_ENDPOINT_URL={} aws ec2 enable-ebs-encryption-by-default --region {R} >/dev/null\nexec {} \"$@\"\n",
            twin.endpoint,
            which::which("packer").unwrap().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = json_template(
        dir.path(),
        "t.json",
        builder(&twin.endpoint, s(&env["source_ami"]), json!({})),
    );
    let out = twin
        .amiguard(dir.path())
        .env("AMIGUARD_PACKER", &wrapper)
        .args([
            "build",
            "--intent",
            "unencrypted",
            "--report",
            "report.json",
            t.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r = report(dir.path());
    assert_eq!(r["verdict"], "violated");
    let region = &r["builds"][0]["regions"][0];
    assert_eq!(region["verdict"], "violated");
    assert!(
        s(&region["drift"]).contains("the account changed during the build"),
        "{region}"
    );
    assert!(text(&out.stderr).contains("VIOLATED"));
    // The AMI stays: the report names it.
    assert!(!twin.snapshots(R, s(&region["actual"]["ami_id"])).is_empty());
}

/// Starts a build whose instance waits in StopInstances, in its own process group, and returns
/// once Packer is stopping the instance.
fn start_slow_build(twin: &Twin, dir: &Path, tmp: &Path) -> std::process::Child {
    let env = twin.scenario(&["--region", R]);
    json_template(
        dir,
        "t.json",
        builder(&twin.endpoint, s(&env["source_ami"]), json!({})),
    );
    let mut child = twin
        .amiguard(dir)
        .env("TMPDIR", tmp)
        .args(["build", "--intent", "encrypted", "-color=false", "t.json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("Packer ended before stopping the instance")
            .unwrap();
        if line.contains("Stopping the source instance") {
            break;
        }
    }
    // Keep draining so Packer never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "amiguard did not finish after the signal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Interrupts a build while its instance runs, with `interrupt(amiguard's pid)`, and checks
/// that Packer cleaned up, amiguard exited non-zero and no temporary file is left.
fn assert_interrupt_cleans_up(interrupt: impl FnOnce(nix::unistd::Pid)) {
    let twin = Twin::start_with(&["--slow", "StopInstances=20"]);
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = start_slow_build(&twin, dir.path(), tmp.path());
    assert_eq!(twin.live_instances(&[R]), 1, "the instance runs");
    interrupt(nix::unistd::Pid::from_raw(child.id() as i32));
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    assert!(!status.success(), "{status:?}");
    assert_eq!(
        twin.live_instances(&[R]),
        0,
        "Packer's cleanup terminated the instance"
    );
    assert_no_temp_left(dir.path(), tmp.path());
}

#[test]
fn ctrl_c_to_the_process_group_cleans_up_and_exits_non_zero() {
    // What the terminal does on Ctrl-C: SIGINT to every process of the foreground group.
    assert_interrupt_cleans_up(|pid| {
        nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT).unwrap()
    });
}

#[test]
fn sigterm_to_amiguard_is_forwarded_to_packer_which_cleans_up() {
    assert_interrupt_cleans_up(|pid| {
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap()
    });
}

#[test]
fn verify_reads_a_manifest_and_ami_ids_and_flags_violations() {
    let twin = Twin::start();
    let env = twin.scenario(&["--region", R, "--source", "aws-managed"]);
    let cmk_env = twin.scenario(&[
        "--region",
        R2,
        "--source",
        "cmk",
        "--cmk-alias",
        "alias/other",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    let aws_ami = s(&env["source_ami"]);
    let cmk_ami = s(&cmk_env["source_ami"]);
    std::fs::write(
        &manifest,
        json!({"builds": [{"name": "golden", "builder_type": "amazon-ebs", "artifact_id": format!("{R}:{aws_ami},{R2}:{cmk_ami}")}], "last_run_uuid": "x"}).to_string(),
    )
    .unwrap();
    let out = twin.run(
        dir.path(),
        &[
            "verify",
            "--intent",
            "shareable",
            "--format",
            "json",
            "--manifest",
            "manifest.json",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let r = json_report(&out);
    let regions = r["builds"][0]["regions"].as_array().unwrap();
    let by_region = |reg: &str| regions.iter().find(|x| x["region"] == reg).unwrap().clone();
    assert_eq!(by_region(R)["verdict"], "violated");
    assert_eq!(by_region(R)["actual"]["snapshots"][0]["key_manager"], "AWS");
    assert_eq!(by_region(R2)["verdict"], "verified");
    assert_eq!(
        by_region(R2)["actual"]["snapshots"][0]["key_alias"],
        "alias/other"
    );
    // The same AMI on the command line, with the default Region.
    let out = twin.run(
        dir.path(),
        &[
            "verify",
            "--intent",
            "encrypted",
            &format!("{R2}:{cmk_ami}"),
            aws_ami,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("verified"));
}

#[test]
fn verify_without_amis_is_a_usage_error() {
    let twin = Twin::start();
    let dir = tempfile::tempdir().unwrap();
    let out = twin.run(dir.path(), &["verify"]);
    assert_eq!(out.status.code(), Some(2));
}
