//! Test harness: a local AWS twin per test, its scenario set-up, and amiguard run against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const R: &str = "ap-northeast-1";
pub const R2: &str = "us-east-1";
pub const OTHER_ACCOUNT: &str = "210987654321";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn amiguard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amiguard"))
}

/// One twin on a free loopback port; stopped when dropped.
pub struct Twin {
    child: Child,
    pub endpoint: String,
}

impl Twin {
    pub fn start() -> Twin {
        Twin::start_with(&[])
    }

    /// With extra twin flags (`--deny ACTION`).
    pub fn start_with(args: &[&str]) -> Twin {
        let mut child = Command::new("python3")
            .arg(repo().join("tests/twin/twin.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed to run the twin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("AMIGUARD_TWIN_ENDPOINT=")
            .unwrap_or_else(|| {
                panic!("the twin did not start (is moto installed? run .ci/run): {line:?}")
            })
            .to_string();
        Twin { child, endpoint }
    }

    fn python(&self, script: &str, args: &[&str]) -> Value {
        let out = Command::new("python3")
            .arg(repo().join("tests/twin").join(script))
            .arg("--endpoint")
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Sets up the account (tests/twin/scenario.py): returns source_ami, cmk_arn{region}.
    pub fn scenario(&self, args: &[&str]) -> Value {
        self.python("scenario.py", args)
    }

    /// How many instances were ever launched in these Regions.
    pub fn instances(&self, regions: &[&str]) -> u64 {
        let mut args = vec!["instances"];
        args.extend(regions);
        self.python("inspect_twin.py", &args)["count"]
            .as_u64()
            .unwrap()
    }

    /// How many instances are not terminated in these Regions.
    pub fn live_instances(&self, regions: &[&str]) -> u64 {
        let mut args = vec!["instances"];
        args.extend(regions);
        self.python("inspect_twin.py", &args)["live"]
            .as_u64()
            .unwrap()
    }

    /// The snapshots behind an AMI.
    pub fn snapshots(&self, region: &str, ami: &str) -> Vec<Value> {
        self.python("inspect_twin.py", &["snapshots", region, ami])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Runs amiguard in `dir` against the twin and waits for it.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.amiguard(dir).args(args).output().unwrap()
    }

    /// amiguard with the standard AWS configuration pointed at the twin.
    pub fn amiguard(&self, dir: &Path) -> Command {
        let mut c = Command::new(amiguard_bin());
        c.current_dir(dir)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", R)
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("AWS_PROFILE")
            .env_remove("AMIGUARD_INTENT")
            .env_remove("AMIGUARD_KMS_KEY");
        c
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        unsafe_free_kill(&mut self.child);
    }
}

/// SIGTERM, so the twin shuts its server down cleanly, then reap it.
fn unsafe_free_kill(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// An amazon-ebs builder that needs no SSH and talks only to the twin.
pub fn builder(endpoint: &str, source_ami: &str, extra: Value) -> Value {
    let mut b = serde_json::json!({
        "type": "amazon-ebs",
        "region": R,
        "source_ami": source_ami,
        "instance_type": "t3.micro",
        "ami_name": "amiguard-{{timestamp}}",
        "communicator": "none",
        "custom_endpoint_ec2": endpoint,
        "skip_region_validation": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

/// Writes a JSON template with one builder into `dir`.
pub fn json_template(dir: &Path, name: &str, builder: Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&serde_json::json!({ "builders": [builder] })).unwrap(),
    )
    .unwrap();
    p
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs and parses `--format json` output.
pub fn json_report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}
