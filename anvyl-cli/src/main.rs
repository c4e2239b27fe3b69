//! The `anvyl` binary: everything happens in the library's `main`.

fn main() -> std::process::ExitCode {
    anvyl_cli::main()
}
