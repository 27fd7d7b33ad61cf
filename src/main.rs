//! The `rollbook` binary: all behaviour lives in the library's `cli` module.

/// mimalloc instead of the system allocator: a fleet run allocates from some fifty threads at
/// once, where glibc's per-thread arenas cost a tenth of the CPU and kept freed memory resident
/// (see BENCHMARKS.md, "Profiled and removed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(rollbook::cli::main());
}
