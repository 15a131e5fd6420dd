//! The `observer` command. Everything lives in the library; see `cli`.
fn main() -> std::process::ExitCode {
    observer::cli::main()
}
