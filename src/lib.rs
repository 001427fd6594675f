//! amiguard: a drop-in wrapper for HashiCorp Packer that makes the encryption of the AMIs it
//! builds predictable, correct and verified.
//!
//! `main_with_args` routes the command line: amiguard's own `--version` and `--help`, and every
//! other command handed over to the real Packer untouched.

pub mod aws;
pub mod cli;
mod commands;
pub mod decide;
pub mod error;
pub mod exit;
pub mod inject;
pub mod intent;
pub mod model;
pub mod packer;
pub mod plan;
pub mod predict;
pub mod report;
pub mod run;
pub mod template;
pub mod verify;

use std::ffi::OsString;
use std::process::ExitCode;

pub use error::Error;
pub use exit::Exit;

/// What amiguard's own `--help` prints.
pub const HELP: &str = "\
amiguard: a drop-in wrapper for HashiCorp Packer that makes AMI encryption predictable,
correct and verified.

Usage: amiguard <packer command> [args...]      (or: alias packer=amiguard)

  build [packer build flags] [--intent I] [--kms-key KEY]... [--report FILE] TEMPLATE
          plan, run the real Packer (on a copy with the fix injected, if needed), then verify
          every AMI it built; refuses before launching anything if the intent cannot be met
  plan    [--intent I] [--kms-key KEY]... [--format human|json] [--report FILE] [-var ...]
          [-var-file ...] [-only ...] [-except ...] TEMPLATE
          predict every AMI's encryption in every Region; launches nothing
  verify  [--intent I] [--kms-key KEY]... [--region R] [--manifest FILE] [AMI...]
          read back every snapshot of existing AMIs and check them against the intent

Intents: any, unencrypted, encrypted, shareable, cmk, auto (default; or $AMIGUARD_INTENT,
or `intent` in amiguard.toml). Keys: --kms-key KEY or REGION=KEY, $AMIGUARD_KMS_KEY.

Every other command goes straight to the real Packer, untouched: arguments, stdin, stdout,
stderr, signals and exit status are Packer's own.

amiguard's own:
  --version   print amiguard's version (Packer's own: `amiguard version`)
  --help      print this help

The real Packer is $AMIGUARD_PACKER if set, else the first `packer` on PATH that is not
amiguard itself.

Exit codes of amiguard's own (all others are Packer's): 0 ok, 2 usage or template error,
3 refused, 4 a built AMI violates the intent, 5 AWS access failed, 126 the Packer found cannot
be run (it leads back to amiguard), 127 no Packer found.
";

/// Runs amiguard with a full argument vector (`argv[0]` first) and returns the exit status.
/// This is the one place that prints amiguard's own final error.
pub fn main_with_args(args: Vec<OsString>) -> ExitCode {
    match run(args) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            eprintln!("amiguard: {err}");
            ExitCode::from(err.exit().code())
        }
    }
}

/// Routes one invocation. Returns only when amiguard itself decides the exit status: a
/// pass-through replaces the process with Packer.
pub fn run(args: Vec<OsString>) -> Result<Exit, Error> {
    let rest = &args[args.len().min(1)..];
    // Packer's global flags (`-machine-readable`) may stand before the command.
    let globals = rest
        .iter()
        .take_while(|a| {
            a.to_str()
                .is_some_and(|s| s.starts_with('-') && s != "--version" && s != "--help")
        })
        .count();
    match rest.get(globals).and_then(|a| a.to_str()) {
        Some("build") => return commands::build(&rest[..globals], &rest[globals + 1..]),
        Some("plan") if globals == 0 => return commands::plan(&rest[1..]),
        Some("verify") if globals == 0 => return commands::verify(&rest[1..]),
        _ => {}
    }
    match rest.first().and_then(|a| a.to_str()) {
        Some("--version") => {
            println!("amiguard {}", env!("CARGO_PKG_VERSION"));
            Ok(Exit::Ok)
        }
        Some("--help") => {
            print!("{HELP}");
            Ok(Exit::Ok)
        }
        _ => {
            let packer = packer::locate()?;
            Err(packer.exec(rest).into())
        }
    }
}
