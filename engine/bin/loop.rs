/// Every allocation of `loop`, with the memory budget of its evaluation process.
#[global_allocator]
static ALLOCATOR: loop_engine::isolation::BudgetAllocator = loop_engine::isolation::BudgetAllocator;

fn main() -> std::process::ExitCode {
    // Evaluations run in `loop __eval`; without a path to itself, in this process.
    if let Ok(exe) = std::env::current_exe() {
        loop_engine::isolation::enable(exe);
    }
    loop_engine::cli::main()
}
