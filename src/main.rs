//! The `metaexec` binary: everything lives in the library; this only hands over.

// Sweeps move many small JSON values between threads; mimalloc's per-thread heaps cost
// less than the system allocator's arenas there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    metaexec::cli::main()
}
