//! Running the real Packer for `build`, and reading the AMIs it made from its own output.
//!
//! Packer's stdout is relayed byte for byte as it comes (colours, `-machine-readable`, timestamps
//! untouched) while a copy is parsed for artifacts; stdin and stderr are Packer's own. Packer
//! stays in the terminal's foreground process group, so Ctrl-C reaches it directly: amiguard
//! ignores SIGINT while it waits, forwards SIGTERM and SIGHUP to Packer, and waits for Packer's
//! own cleanup (facts §5, Signals; casey/just does the same).

use std::ffi::OsString;
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};

use crate::packer::{PackerError, RealPacker};

/// One AMI Packer reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The build name.
    pub build: String,
    /// The Region.
    pub region: String,
    /// The AMI.
    pub ami: String,
}

/// How Packer ended, and what it made.
#[derive(Debug)]
pub struct Finished {
    /// Packer's exit code, or 128 + N when a signal N killed it.
    pub code: i32,
    /// Every AMI reported.
    pub artifacts: Vec<Artifact>,
}

/// The signal handlers amiguard holds while Packer runs. Created before the template copy is
/// written, so an interrupt can never leave the copy behind.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (from then on SIGINT, SIGTERM and SIGHUP no longer end amiguard).
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Runs Packer to the end.
pub async fn run_packer(
    packer: &RealPacker,
    args: &[OsString],
    signals: &mut Signals,
) -> Result<Finished, PackerError> {
    let exec_err = |source| PackerError::Exec {
        path: packer.path.clone(),
        source,
    };
    let mut cmd = tokio::process::Command::from(packer.command(args));
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(exec_err)?;
    let pid = child.id().map(|p| Pid::from_raw(p as i32));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let relay = tokio::spawn(async move {
        let mut parser = ArtifactParser::default();
        let mut out = tokio::io::stdout();
        let mut buf = vec![0u8; 16 * 1024];
        let mut writable = true;
        loop {
            let n = match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            parser.feed(&buf[..n]);
            // A closed stdout (`| head`) must not stop Packer: keep draining, stop writing.
            if writable && (out.write_all(&buf[..n]).await.is_err() || out.flush().await.is_err()) {
                writable = false;
            }
        }
        parser.finish()
    });
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(exec_err)?,
            _ = signals.int.recv() => {} // Packer has it too, from the terminal; it cleans up.
            _ = signals.term.recv() => forward(pid, Signal::SIGTERM),
            _ = signals.hup.recv() => forward(pid, Signal::SIGHUP),
        }
    };
    let artifacts = relay.await.unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(Finished { code, artifacts })
}

fn forward(pid: Option<Pid>, sig: Signal) {
    if let Some(pid) = pid {
        let _ = kill(pid, sig);
    }
}

/// Reads artifacts from Packer's stdout: the human `--> NAME: AMIs were created:` block and the
/// `-machine-readable` `artifact,0,id` line (facts §5, Output), with or without colours and
/// `-timestamp-ui` prefixes.
#[derive(Debug, Default)]
pub struct ArtifactParser {
    pending: Vec<u8>,
    current: Option<String>,
    found: Vec<Artifact>,
}

impl ArtifactParser {
    /// Takes the next chunk of output.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            self.line(&String::from_utf8_lossy(&line));
        }
    }

    /// Ends the input and returns every artifact, each once.
    pub fn finish(mut self) -> Vec<Artifact> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.line(&String::from_utf8_lossy(&rest));
        }
        let mut out: Vec<Artifact> = Vec::new();
        for a in self.found {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    fn line(&mut self, raw: &str) {
        let line = strip_ansi(raw);
        let line = line.trim_end();
        let fields: Vec<&str> = line.splitn(6, ',').collect();
        if fields.len() == 6 && fields[2] == "artifact" && fields[4] == "id" {
            for pair in fields[5].replace("%!(PACKER_COMMA)", ",").split(',') {
                if let Some((region, ami)) = pair.split_once(':') {
                    self.found.push(Artifact {
                        build: fields[1].to_string(),
                        region: region.into(),
                        ami: ami.into(),
                    });
                }
            }
            return;
        }
        if let Some(idx) = line.find("--> ")
            && let Some(name) = line[idx + 4..].strip_suffix(": AMIs were created:")
        {
            self.current = Some(name.to_string());
            return;
        }
        if let Some(build) = &self.current {
            // `region: ami-…`, possibly after a `-timestamp-ui` prefix.
            let tail = line
                .rsplit_once(": ")
                .filter(|(_, ami)| ami.starts_with("ami-") && !ami.contains(' '));
            match tail {
                Some((head, ami)) => {
                    let region = head.rsplit(' ').next().unwrap_or(head).trim();
                    self.found.push(Artifact {
                        build: build.clone(),
                        region: region.into(),
                        ami: ami.into(),
                    });
                }
                None => self.current = None,
            }
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> Vec<(String, String, String)> {
        let mut p = ArtifactParser::default();
        for c in chunks {
            p.feed(c.as_bytes());
        }
        p.finish()
            .into_iter()
            .map(|a| (a.build, a.region, a.ami))
            .collect()
    }

    #[test]
    fn reads_human_output_with_colours_split_across_chunks() {
        let out = parse(&[
            "\u{1b}[1;32m==> Builds finished. The artifacts of successful builds are:\u{1b}[0m\n\u{1b}[1;32m--> amazon-ebs.go",
            "lden: AMIs were created:\nap-northeast-1: ami-0a1\nus-east-1: ami-0b2\n\u{1b}[0m\n",
        ]);
        assert_eq!(
            out,
            vec![
                (
                    "amazon-ebs.golden".into(),
                    "ap-northeast-1".into(),
                    "ami-0a1".into()
                ),
                (
                    "amazon-ebs.golden".into(),
                    "us-east-1".into(),
                    "ami-0b2".into()
                )
            ]
        );
    }

    #[test]
    fn reads_timestamped_output() {
        let out = parse(&[
            "2026-11-28T10:00:00Z: --> a: AMIs were created:\n2026-11-28T10:00:00Z: eu-west-1: ami-9\n",
        ]);
        assert_eq!(out, vec![("a".into(), "eu-west-1".into(), "ami-9".into())]);
    }

    #[test]
    fn reads_machine_readable_artifact_lines() {
        let out = parse(&[
            "1700000000,golden,artifact,0,id,ap-northeast-1:ami-1%!(PACKER_COMMA)us-east-1:ami-2\n1700000000,golden,artifact,0,end\n",
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1],
            ("golden".into(), "us-east-1".into(), "ami-2".into())
        );
    }

    #[test]
    fn an_errored_build_reports_nothing() {
        assert!(parse(&["==> Some builds didn't complete successfully and had errors:\n--> a: Error modify AMI attributes\n"]).is_empty());
    }
}
