//! amiguard in front of the real Packer changes nothing for the commands it does not guard:
//! same stdout, stderr, stdin and exit status, as an alias or as a symlink named `packer`.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn amiguard() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amiguard"))
}

/// The real Packer (Debian's 1.6.6): the tests need it, and say so plainly when it is missing.
fn real_packer() -> PathBuf {
    which::which("packer")
        .expect("the real `packer` must be on PATH: run .ci/run or apt-get install packer")
}

fn run(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .env("CHECKPOINT_DISABLE", "1")
        .env_remove("AMIGUARD_PACKER")
        .env_remove("AMIGUARD_DEPTH")
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_prints_exactly_what_packer_prints() {
    let theirs = run(&real_packer(), &["version"], &[]);
    let ours = run(&amiguard(), &["version"], &[]);
    assert!(theirs.status.success());
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    assert_eq!(text(&ours.stderr), text(&theirs.stderr));
    assert_eq!(ours.status.code(), theirs.status.code());
}

#[test]
fn validate_of_a_bad_template_exits_with_packers_own_code_and_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"builders": [{"type": "amazon-ebs"}]}"#,
    )
    .unwrap();
    let theirs = Command::new(real_packer())
        .current_dir(dir.path())
        .args(["validate", "bad.json"])
        .output()
        .unwrap();
    let ours = Command::new(amiguard())
        .current_dir(dir.path())
        .args(["validate", "bad.json"])
        .output()
        .unwrap();
    assert_ne!(
        theirs.status.code(),
        Some(0),
        "Packer accepted the bad template"
    );
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
}

#[test]
fn bare_invocation_and_subcommand_help_are_packers() {
    for args in [
        &[][..],
        &["fmt", "--help"][..],
        &["validate", "-h"][..],
        &["inspect", "--help"][..],
    ] {
        let theirs = run(&real_packer(), args, &[]);
        let ours = run(&amiguard(), args, &[]);
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        assert_eq!(text(&ours.stdout), text(&theirs.stdout), "{args:?}");
        assert_eq!(text(&ours.stderr), text(&theirs.stderr), "{args:?}");
    }
}

#[test]
fn stdin_reaches_packer() {
    // `packer console` evaluates what it reads on stdin.
    let mut child = Command::new(amiguard())
        .arg("console")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{{ upper `amiguard` }}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        text(&out.stdout).contains("AMIGUARD"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_symlink_named_packer_first_on_path_runs_the_real_packer_without_recursing() {
    let shim = tempfile::tempdir().unwrap();
    symlink(amiguard(), shim.path().join("packer")).unwrap();
    let real_dir = real_packer().parent().unwrap().to_path_buf();
    let path = std::env::join_paths([
        shim.path(),
        &real_dir,
        Path::new("/usr/bin"),
        Path::new("/bin"),
    ])
    .unwrap();
    let via_symlink = run(
        &shim.path().join("packer"),
        &["version"],
        &[("PATH", path.to_str().unwrap())],
    );
    let direct = run(&real_packer(), &["version"], &[]);
    assert_eq!(
        via_symlink.status.code(),
        Some(0),
        "{}",
        text(&via_symlink.stderr)
    );
    assert_eq!(text(&via_symlink.stdout), text(&direct.stdout));
}

#[test]
fn a_wrapper_that_calls_amiguard_again_is_stopped_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("packer");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {} \"$@\"\n", amiguard().display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path =
        std::env::join_paths([dir.path(), Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
    let out = run(
        &amiguard(),
        &["version"],
        &[
            ("PATH", path.to_str().unwrap()),
            ("AMIGUARD_PACKER", wrapper.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(126));
    let err = text(&out.stderr);
    assert!(
        err.contains("leads back to amiguard") && err.contains("AMIGUARD_PACKER"),
        "{err}"
    );
}

#[test]
fn no_packer_anywhere_exits_127_naming_what_was_searched() {
    let empty = tempfile::tempdir().unwrap();
    let out = run(
        &amiguard(),
        &["version"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(127));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&empty.path().display().to_string()) && err.contains("AMIGUARD_PACKER"),
        "{err}"
    );
}

#[test]
fn a_packer_killed_by_a_signal_looks_killed_by_that_signal() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("packer");
    std::fs::write(&fake, "#!/bin/sh\nkill -TERM $$\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(
        &amiguard(),
        &["version"],
        &[("AMIGUARD_PACKER", fake.to_str().unwrap())],
    );
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
}

#[test]
fn version_and_help_flags_are_amiguards_own_and_say_where_the_rest_goes() {
    let v = run(&amiguard(), &["--version"], &[("PATH", "/nonexistent")]);
    assert_eq!(
        text(&v.stdout),
        format!("amiguard {}\n", env!("CARGO_PKG_VERSION"))
    );
    let h = run(&amiguard(), &["--help"], &[("PATH", "/nonexistent")]);
    assert!(h.status.success());
    assert!(text(&h.stdout).contains("Every other command goes straight to the real Packer"));
}
