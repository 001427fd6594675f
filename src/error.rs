//! The error amiguard reports when it stops on its own account, and the exit code for each kind.
//! Every variant carries what the user needs to act: the file and line, the Region, the API call
//! or the IAM permission.

use crate::aws::AwsError;
use crate::exit::Exit;
use crate::packer::PackerError;
use crate::template::TemplateError;

/// Everything that can stop amiguard before, or instead of, Packer's own exit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The real Packer cannot be found or run.
    #[error(transparent)]
    Packer(#[from] PackerError),
    /// Bad command-line usage or configuration.
    #[error("{0}")]
    Usage(String),
    /// The template cannot be read as Packer would read it.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Packer(PackerError::NotFound { .. }) => Exit::PackerNotFound,
            Error::Packer(_) => Exit::PackerUnusable,
            Error::Usage(_) | Error::Template(_) => Exit::Usage,
            Error::Aws(_) => Exit::Aws,
        }
    }
}
