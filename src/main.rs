//! `amiguard`: a drop-in wrapper for HashiCorp Packer that makes AMI encryption predictable,
//! correct and verified. Everything lives in the library; this is only the entry point.

fn main() -> std::process::ExitCode {
    amiguard::main_with_args(std::env::args_os().collect())
}
