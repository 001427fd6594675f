//! The exit codes amiguard documents (README, "Exit codes"). A child Packer's own code is passed
//! through unchanged, so these are chosen away from Packer's (0, 1) where they can be.

/// How amiguard ends, when it does not hand over to Packer's own exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The plan met the intent (as it was, or with the injected change).
    Ok,
    /// Usage or template error: bad flags, malformed JSON/HCL, a missing variable.
    Usage,
    /// The plan refused: nothing in the template can meet the intent, or the template contradicts it.
    Refused,
    /// A built AMI does not have the encryption the intent asked for.
    Violated,
    /// An AWS call failed: credentials, a missing IAM permission, an endpoint.
    Aws,
    /// The real Packer was found but cannot be run (recursion, not executable).
    PackerUnusable,
    /// No real Packer was found.
    PackerNotFound,
    /// Packer's own exit code, passed through.
    Packer(u8),
}

impl Exit {
    /// The process exit status for this outcome.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::Violated => 4,
            Exit::Aws => 5,
            Exit::PackerUnusable => 126,
            Exit::PackerNotFound => 127,
            Exit::Packer(code) => code,
        }
    }
}
