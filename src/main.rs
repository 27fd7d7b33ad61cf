//! The `rollbook` binary: all behaviour lives in the library's `cli` module.

/// mimalloc instead of the system allocator: a fleet run allocates from some fifty threads at
/// once, and glibc's `malloc` and `free` were a sixth of its CPU (BENCHMARKS.md, "Profiled and
/// removed"). Built without transparent huge pages, which nearly tripled its resident size.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(rollbook::cli::main());
}
