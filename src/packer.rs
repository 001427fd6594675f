//! Finding the real Packer and handing over to it.
//!
//! amiguard stands in for `packer` (an alias, or a symlink named `packer` earlier on `PATH`), so
//! the real one is `$AMIGUARD_PACKER`, else the first `packer` on `PATH` that is not amiguard's
//! own binary (mise does the same: skip any entry whose canonical path is our own). A wrapper
//! script that calls amiguard again would still loop, so a counter in the environment stops
//! that, as rustup's proxies do.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Names the real Packer explicitly, bypassing the `PATH` search.
pub const PACKER_ENV: &str = "AMIGUARD_PACKER";
/// How many amiguards stand above this one; set on every Packer amiguard starts.
pub const DEPTH_ENV: &str = "AMIGUARD_DEPTH";
/// Past this many nested amiguards, the `packer` found must lead back to amiguard.
const MAX_DEPTH: u32 = 3;

/// Why the real Packer cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum PackerError {
    #[error(
        "cannot find the real Packer: ${PACKER_ENV} is not set and no `packer` other than amiguard \
         itself is on PATH (searched: {searched}). Install Packer or set {PACKER_ENV}"
    )]
    NotFound { searched: String },
    #[error("${PACKER_ENV} is {path}, which {problem}")]
    BadOverride {
        path: PathBuf,
        problem: &'static str,
    },
    #[error(
        "the `packer` found leads back to amiguard ({DEPTH_ENV}={depth}): {path} runs amiguard \
         again. Set {PACKER_ENV} to the real Packer binary"
    )]
    Recursion { path: PathBuf, depth: u32 },
    #[error("cannot run Packer at {path}: {source}")]
    Exec {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The real Packer and the depth to give it.
#[derive(Debug, Clone)]
pub struct RealPacker {
    /// The binary to run.
    pub path: PathBuf,
    /// The value of `AMIGUARD_DEPTH` for the child.
    pub depth: u32,
}

/// Locates the real Packer from the process environment.
pub fn locate() -> Result<RealPacker, PackerError> {
    let own = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    locate_in(
        std::env::var_os(PACKER_ENV),
        std::env::var_os("PATH"),
        std::env::var(DEPTH_ENV).ok(),
        own.as_deref(),
    )
}

/// [`locate`] with its inputs made explicit, for tests.
pub fn locate_in(
    override_path: Option<OsString>,
    path_var: Option<OsString>,
    depth: Option<String>,
    own: Option<&Path>,
) -> Result<RealPacker, PackerError> {
    let depth = depth
        .and_then(|d| d.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let is_own = |p: &Path| match (own, p.canonicalize()) {
        (Some(own), Ok(canon)) => canon == own,
        _ => false,
    };
    let path = match override_path.filter(|p| !p.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Err(PackerError::BadOverride {
                    path: p,
                    problem: "is not a file",
                });
            }
            if is_own(&p) {
                return Err(PackerError::BadOverride {
                    path: p,
                    problem: "is amiguard itself",
                });
            }
            p
        }
        None => {
            let path_var = path_var.unwrap_or_default();
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            let found = which::which_in_all("packer", Some(&path_var), cwd)
                .into_iter()
                .flatten()
                .find(|p| !is_own(p));
            match found {
                Some(p) => p,
                None => {
                    return Err(PackerError::NotFound {
                        searched: searched_dirs(&path_var),
                    });
                }
            }
        }
    };
    if depth >= MAX_DEPTH {
        return Err(PackerError::Recursion { path, depth });
    }
    Ok(RealPacker {
        path,
        depth: depth + 1,
    })
}

fn searched_dirs(path_var: &OsStr) -> String {
    let dirs: Vec<String> = std::env::split_paths(path_var)
        .map(|d| d.display().to_string())
        .collect();
    if dirs.is_empty() {
        "PATH is empty".into()
    } else {
        dirs.join(":")
    }
}

impl RealPacker {
    /// A command that runs this Packer with `args`, marked with the recursion counter.
    pub fn command<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = std::process::Command::new(&self.path);
        cmd.args(args).env(DEPTH_ENV, self.depth.to_string());
        cmd
    }

    /// Replaces this process with Packer: exit status, stdio and signals are Packer's own,
    /// exactly as if it had been run directly. Returns only if the exec failed.
    pub fn exec(&self, args: &[OsString]) -> PackerError {
        use std::os::unix::process::CommandExt;
        let source = self.command(args).exec();
        PackerError::Exec {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake_packer(dir: &Path) -> PathBuf {
        let p = dir.join("packer");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn skips_a_packer_on_path_that_is_amiguard_itself() {
        let ours = tempfile::tempdir().unwrap();
        let real = tempfile::tempdir().unwrap();
        let own = fake_packer(ours.path());
        let theirs = fake_packer(real.path());
        let path = std::env::join_paths([ours.path(), real.path()]).unwrap();
        let found = locate_in(None, Some(path), None, Some(&own.canonicalize().unwrap())).unwrap();
        assert_eq!(found.path, theirs);
        assert_eq!(found.depth, 1);
    }

    #[test]
    fn names_every_searched_directory_when_no_packer_is_found() {
        let empty = tempfile::tempdir().unwrap();
        let path = std::env::join_paths([empty.path(), Path::new("/nonexistent")]).unwrap();
        let err = locate_in(None, Some(path), None, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PackerError::NotFound { .. }));
        assert!(msg.contains(&empty.path().display().to_string()), "{msg}");
        assert!(msg.contains("/nonexistent"), "{msg}");
    }

    #[test]
    fn the_override_wins_over_path_and_must_exist() {
        let real = tempfile::tempdir().unwrap();
        let p = fake_packer(real.path());
        let found = locate_in(Some(p.clone().into()), Some("".into()), None, None).unwrap();
        assert_eq!(found.path, p);
        let err = locate_in(Some("/no/such/packer".into()), None, None, None).unwrap_err();
        assert!(matches!(err, PackerError::BadOverride { .. }));
    }

    #[test]
    fn stops_when_the_depth_counter_shows_a_loop() {
        let real = tempfile::tempdir().unwrap();
        let p = fake_packer(real.path());
        let err = locate_in(Some(p.into()), None, Some("3".into()), None).unwrap_err();
        assert!(matches!(err, PackerError::Recursion { depth: 3, .. }));
    }
}
