//! The one report model (README, "Report schema") and its two renderings: JSON for machines,
//! text for people.

use std::fmt::Write as _;

use serde::Serialize;

use crate::decide::{Change, Problem};
use crate::predict::PredictedSummary;
use crate::verify::{Actual, Check, Checked};

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every build meets the intent as it is.
    Ok,
    /// Some build meets it with injected attributes.
    Injected,
    /// Some build cannot meet it.
    Refused,
    /// Every AMI built was checked and meets the intent.
    Verified,
    /// Some AMI built does not meet the intent.
    Violated,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ok`, `injected` or `refused`.
    pub verdict: Verdict,
    /// The intent asked for (`auto` stays `auto` here; each build says what it became).
    pub intent: String,
    /// The template.
    pub template: String,
    /// Every amazon-ebs build selected.
    pub builds: Vec<BuildReport>,
    /// Builds of other builder types, left alone.
    pub not_checked: Vec<String>,
}

/// One build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The build name.
    pub name: String,
    /// The build Region (null when unknown).
    pub region: Option<String>,
    /// The source AMI id as resolved (null when unknown).
    pub source_ami: Option<String>,
    /// The intent applied to this build.
    pub intent: String,
    /// This build's verdict.
    pub verdict: Verdict,
    /// Attributes injected.
    pub changes: Vec<Change>,
    /// Why it is refused (or, under `any`, what would go wrong).
    pub problems: Vec<Problem>,
    /// Every Region it ends with an AMI in.
    pub regions: Vec<RegionReport>,
}

/// One Region of a build.
#[derive(Debug, Clone, Serialize)]
pub struct RegionReport {
    /// The Region.
    pub region: String,
    /// The prediction (absent for AMIs verified without a plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<PredictedSummary>,
    /// Why, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The AMI as AWS holds it, once verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<Actual>,
    /// `verified` or `violated`, once verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Check>,
    /// Why it is violated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    /// Where the actual result differs from the prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
}

impl RegionReport {
    /// A Region as planned, before anything is built.
    pub fn planned(region: String, predicted: PredictedSummary, reasons: Vec<String>) -> Self {
        RegionReport {
            region,
            predicted: Some(predicted),
            reasons,
            actual: None,
            verdict: None,
            violations: vec![],
            drift: None,
        }
    }

    /// A Region known only from verification (no plan, or a Region the plan did not expect).
    pub fn checked(c: &Checked) -> Self {
        let mut r = RegionReport {
            region: c.target.region.clone(),
            predicted: None,
            reasons: vec![],
            actual: None,
            verdict: None,
            violations: vec![],
            drift: None,
        };
        r.add_check(c);
        r
    }

    /// Adds what verification found.
    pub fn add_check(&mut self, c: &Checked) {
        self.actual = Some(c.actual.clone());
        self.verdict = Some(c.verdict);
        self.violations = c.violations.clone();
        self.drift = c.drift.clone();
    }
}

impl Report {
    /// The verdict of all builds together: refused if any is, else injected if any is.
    pub fn overall(builds: &[BuildReport]) -> Verdict {
        if builds.iter().any(|b| b.verdict == Verdict::Refused) {
            Verdict::Refused
        } else if builds.iter().any(|b| b.verdict == Verdict::Injected) {
            Verdict::Injected
        } else {
            Verdict::Ok
        }
    }

    /// Pretty JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }

    /// Sets the verdict after verification: violated if any Region is.
    pub fn set_verified(&mut self) {
        let violated = self
            .builds
            .iter()
            .flat_map(|b| &b.regions)
            .any(|r| r.verdict == Some(Check::Violated));
        self.verdict = if violated {
            Verdict::Violated
        } else {
            Verdict::Verified
        };
    }

    /// The verification table people read: per build and Region, every snapshot.
    pub fn to_human_checks(&self) -> String {
        let mut out = String::from("amiguard verify: every snapshot of every AMI\n");
        let row = |out: &mut String, cells: [&str; 5], verdict: &str| {
            let _ = writeln!(
                out,
                "  {:<15} {:<22} {:<23} {:<9} {:<44} {verdict}",
                cells[0], cells[1], cells[2], cells[3], cells[4]
            );
        };
        for b in self
            .builds
            .iter()
            .filter(|b| b.regions.iter().any(|r| r.actual.is_some()))
        {
            let _ = writeln!(out, "build {} (intent {})", b.name, b.intent);
            row(
                &mut out,
                ["region", "ami", "snapshot", "encrypted", "key"],
                "verdict",
            );
            for r in &b.regions {
                let Some(a) = &r.actual else { continue };
                let verdict = if r.verdict == Some(Check::Verified) {
                    "verified"
                } else {
                    "VIOLATED"
                };
                if a.snapshots.is_empty() {
                    row(&mut out, [&r.region, &a.ami_id, "-", "-", "-"], verdict);
                }
                for s in &a.snapshots {
                    let key = s
                        .key_alias
                        .clone()
                        .or(s.kms_key_arn.clone())
                        .unwrap_or_else(|| "-".into());
                    let manager = match s.key_manager {
                        Some(crate::model::KeyManager::Aws) => " (AWS managed)",
                        Some(crate::model::KeyManager::Customer) => " (customer)",
                        None => "",
                    };
                    let enc = if s.encrypted { "yes" } else { "no" };
                    row(
                        &mut out,
                        [
                            &r.region,
                            &a.ami_id,
                            &s.snapshot_id,
                            enc,
                            &format!("{key}{manager}"),
                        ],
                        verdict,
                    );
                }
                for v in &r.violations {
                    let _ = writeln!(out, "    violated: {v}");
                }
                if let Some(d) = &r.drift {
                    let _ = writeln!(out, "    note: {d}");
                }
            }
        }
        let _ = writeln!(out, "verdict: {}", verdict_word(self.verdict));
        out
    }

    /// The text people read.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "amiguard plan: {} (intent {})",
            self.template, self.intent
        );
        for b in &self.builds {
            let _ = writeln!(
                out,
                "\nbuild {}  [intent {}; region {}; source {}]",
                b.name,
                b.intent,
                b.region.as_deref().unwrap_or("unknown"),
                b.source_ami.as_deref().unwrap_or("unknown")
            );
            for r in &b.regions {
                let Some(predicted) = &r.predicted else {
                    continue;
                };
                let _ = writeln!(out, "  {}: {}", r.region, describe(predicted));
                for why in &r.reasons {
                    let _ = writeln!(out, "      because {why}");
                }
            }
            if !b.changes.is_empty() {
                let _ = writeln!(out, "  amiguard adds to a temporary copy of the template:");
                for c in &b.changes {
                    let _ = writeln!(out, "    + {} = {}    ({})", c.attribute, c.value, c.why);
                }
            }
            if !b.problems.is_empty() {
                let label = if b.verdict == Verdict::Refused {
                    "refused"
                } else {
                    "warning"
                };
                for p in &b.problems {
                    let _ = writeln!(out, "  {label} [{}]: {}", p.code, p.message);
                    if !p.fix.is_empty() {
                        let _ = writeln!(out, "      fix: {}", p.fix);
                    }
                }
            }
            let _ = writeln!(out, "  => {}", verdict_word(b.verdict));
        }
        for n in &self.not_checked {
            let _ = writeln!(out, "\nbuild {n}: not checked (not an amazon-ebs builder)");
        }
        let _ = writeln!(out, "\nverdict: {}", verdict_word(self.verdict));
        out
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok: meets the intent as it is",
        Verdict::Injected => "injected: meets the intent with the change above",
        Verdict::Refused => "refused: nothing was launched",
        Verdict::Verified => "verified: every AMI built meets the intent",
        Verdict::Violated => "violated: an AMI does not meet the intent (it was kept; see above)",
    }
}

fn describe(p: &PredictedSummary) -> String {
    if let Some(f) = &p.failure {
        return format!("the build fails: {f}");
    }
    match (&p.kms_key_arn, p.key_manager, p.encrypted) {
        (Some(arn), Some(m), true) => format!(
            "encrypted with {arn} ({})",
            if m == crate::model::KeyManager::Aws {
                "AWS managed"
            } else {
                "customer managed"
            }
        ),
        (Some(arn), _, false) => format!("partly encrypted (root snapshot on {arn})"),
        _ => "unencrypted".to_string(),
    }
}
