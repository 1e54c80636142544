//! The `metaexec` binary: everything lives in the library; this only hands over.

// Sweeps move many small JSON values between threads; mimalloc's per-thread heaps cost
// less than the system allocator's arenas there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set to any value to have the process's peak resident memory written to stderr as it
/// exits (`metaexec: peak RSS N KiB`): how the red-team tests bound what a script can make
/// the host hold. Read from the process's own `/proc/self/status`, so it counts this
/// process alone, not the one that started it.
const REPORT_PEAK_RSS: &str = "METAEXEC_REPORT_PEAK_RSS";

fn main() -> std::process::ExitCode {
    let code = metaexec::cli::main();
    if std::env::var_os(REPORT_PEAK_RSS).is_some()
        && let Some(line) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| status.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
    {
        let kib = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().to_owned();
        eprintln!("metaexec: peak RSS {kib} KiB");
    }
    code
}
