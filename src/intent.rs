//! What the user wants the AMIs' encryption to be, and the keys that go with it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The user's intent for every final snapshot (README, "Intents").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    /// Predict and report only.
    Any,
    /// Every final snapshot unencrypted.
    Unencrypted,
    /// Every final snapshot encrypted, any key.
    Encrypted,
    /// No final snapshot on an AWS managed key (and unencrypted where the AMI is public).
    Shareable,
    /// Every final snapshot encrypted with the given customer managed key(s).
    Cmk,
    /// `shareable` when the build shares its AMI, `unencrypted` when it makes it public, else `any`.
    Auto,
}

impl Intent {
    /// The lowercase name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Intent::Any => "any",
            Intent::Unencrypted => "unencrypted",
            Intent::Encrypted => "encrypted",
            Intent::Shareable => "shareable",
            Intent::Cmk => "cmk",
            Intent::Auto => "auto",
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Intent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Intent as clap::ValueEnum>::from_str(s.trim(), true).map_err(|_| {
            format!(
                "unknown intent {s:?}: expected any, unencrypted, encrypted, shareable, cmk or auto"
            )
        })
    }
}

/// The keys the user named: one for every Region, and/or one per Region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeySpec {
    /// `--kms-key KEY`: every Region (an alias or key id resolves per Region; an ARN only in its own).
    pub global: Option<String>,
    /// `--kms-key REGION=KEY`.
    pub per_region: BTreeMap<String, String>,
}

impl KeySpec {
    /// Adds one `KEY` or `REGION=KEY` item.
    pub fn add(&mut self, item: &str) -> Result<(), String> {
        let item = item.trim();
        if item.is_empty() {
            return Ok(());
        }
        // An ARN contains ':' but never '='; a Region never contains ':' or '/'.
        match item.split_once('=') {
            Some((region, key)) if !region.contains(':') && !region.contains('/') => {
                if region.is_empty() || key.is_empty() {
                    return Err(format!(
                        "bad --kms-key {item:?}: expected KEY or REGION=KEY"
                    ));
                }
                self.per_region.insert(region.to_string(), key.to_string());
            }
            _ => {
                if let Some(previous) = &self.global
                    && previous != item
                {
                    return Err(format!(
                        "two keys for every Region ({previous} and {item}): use REGION=KEY for per-Region keys"
                    ));
                }
                self.global = Some(item.to_string());
            }
        }
        Ok(())
    }

    /// The key for one Region.
    pub fn for_region(&self, region: &str) -> Option<&str> {
        self.per_region
            .get(region)
            .or(self.global.as_ref())
            .map(String::as_str)
    }

    /// Whether no key was given.
    pub fn is_empty(&self) -> bool {
        self.global.is_none() && self.per_region.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_key_accepts_every_key_form_and_region_prefixes() {
        let mut k = KeySpec::default();
        k.add("us-east-1=alias/team").unwrap();
        k.add("arn:aws:kms:eu-west-1:111122223333:key/1234")
            .unwrap();
        assert_eq!(k.for_region("us-east-1"), Some("alias/team"));
        assert_eq!(
            k.for_region("eu-west-1"),
            Some("arn:aws:kms:eu-west-1:111122223333:key/1234")
        );
        let mut alias_arn = KeySpec::default();
        alias_arn
            .add("arn:aws:kms:eu-west-1:111122223333:alias/x")
            .unwrap();
        assert!(alias_arn.per_region.is_empty());
    }

    #[test]
    fn two_different_global_keys_are_an_error() {
        let mut k = KeySpec::default();
        k.add("alias/a").unwrap();
        assert!(k.add("alias/b").is_err());
    }

    #[test]
    fn intents_parse_case_insensitively_and_reject_others() {
        assert_eq!("CMK".parse::<Intent>().unwrap(), Intent::Cmk);
        assert!(
            "secret"
                .parse::<Intent>()
                .unwrap_err()
                .contains("unknown intent")
        );
    }
}
