//! Embeds the guest library (`runtime/metaexec/**/*.py`) and the boot module into the
//! binary, so a `metaexec` binary is self-contained: it writes the library into its cache
//! directory on first use instead of depending on the source tree at run time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                collect(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("runtime");
    println!("cargo:rerun-if-changed={}", root.display());
    // The boot module sits beside the package at the library's root.
    let mut files = vec![root.join("_metaexec_boot.py")];
    collect(&root.join("metaexec"), &mut files);
    let mut code = String::from("/// The guest library's files: path relative to the library root, contents.\n");
    code.push_str("pub const GUEST_LIBRARY: &[(&str, &str)] = &[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let rel = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        writeln!(code, "    ({rel:?}, include_str!({:?})),", file.display().to_string()).unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guest_library.rs");
    std::fs::write(out, code).unwrap();
}
