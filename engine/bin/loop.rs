fn main() -> std::process::ExitCode {
    loop_engine::cli::main()
}
