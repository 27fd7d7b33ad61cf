//! The `rollbook` binary: all behaviour lives in the library's `cli` module.

/// mimalloc instead of the system allocator: a fleet run allocates from some fifty threads at
/// once, and glibc's `malloc` and `free` were a sixth of its CPU (BENCHMARKS.md, "Profiled and
/// removed"). Built without transparent huge pages, which nearly tripled its resident size.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, v2 and v3 alike; the crate's own list
/// of options predates it): how long freed memory stays resident before it is given back.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Memory a thread frees is given back at once rather than 10 ms later. A fleet run's fifty
    // threads free what other threads allocated, and delayed purges pile up: the bench's
    // 10,000-target run peaked at 63 MiB with the delay, 50 MiB without. The price is system time
    // where many threads allocate in bursts: `check` of 1,000 runbooks, 0.25 → 0.5 s (BENCHMARKS.md).
    // `MIMALLOC_PURGE_DELAY` in the environment still decides, as mimalloc documents.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain option of the allocator, which mimalloc reads on every purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    std::process::exit(rollbook::cli::main());
}
