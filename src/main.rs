//! The `egress-audit` binary: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    egress_audit::cli::main()
}
