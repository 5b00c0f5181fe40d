/// Every allocation of `loop`, with the memory budget of its evaluation process.
#[global_allocator]
static ALLOCATOR: loop_engine::isolation::BudgetAllocator = loop_engine::isolation::BudgetAllocator;

fn main() -> std::process::ExitCode {
    loop_engine::isolation::enable();
    loop_engine::cli::main()
}
