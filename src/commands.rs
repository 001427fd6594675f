//! amiguard's own commands, from parsed arguments to an exit code.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::aws::Aws;
use crate::cli::{self, Format};
use crate::error::Error;
use crate::exit::Exit;
use crate::report::Verdict;

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

fn env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Prints clap's help or error the way clap would, and maps it to an exit.
fn clap_exit(e: clap::Error) -> Result<Exit, Error> {
    let _ = e.print();
    Ok(if e.use_stderr() {
        Exit::Usage
    } else {
        Exit::Ok
    })
}

/// `amiguard plan`.
pub fn plan(args: &[OsString]) -> Result<Exit, Error> {
    let a = match cli::parse_plan(args) {
        Ok(a) => a,
        Err(e) => return clap_exit(e),
    };
    let cfg = cli::plan_config(&a.guard, &a.template, &env())?;
    let planned = runtime()?.block_on(async {
        let aws = Aws::load().await;
        crate::plan::plan(&cfg, &aws).await
    })?;
    match a.format {
        Format::Human => print!("{}", planned.report.to_human()),
        Format::Json => print!("{}", planned.report.to_json()),
    }
    if let Some(path) = &a.guard.report {
        std::fs::write(path, planned.report.to_json()).map_err(|e| {
            Error::Usage(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })?;
    }
    if let Some(dest) = &a.emit_copy
        && planned.report.verdict == Verdict::Injected
    {
        let copy = crate::inject::write_copy(&planned.template, &planned.edits)?;
        copy_out(&copy.path, dest)?;
    }
    Ok(match planned.report.verdict {
        Verdict::Refused => Exit::Refused,
        _ => Exit::Ok,
    })
}

fn copy_out(from: &std::path::Path, to: &std::path::Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Usage(format!("cannot write {}: {e}", to.display()));
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(fail)?;
        for entry in std::fs::read_dir(from).map_err(fail)?.flatten() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).map_err(fail)?;
        }
    } else {
        std::fs::copy(from, to).map_err(fail)?;
    }
    Ok(())
}
