//! Embeds the guest app (`runtime/metaexec_app.py`, `runtime/metaexec/**/*.py` and the WIT
//! world `runtime/wit/*.wit`) into the binary, so a `metaexec` binary is self-contained:
//! it builds its runtime component from these instead of depending on the source tree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                collect(&path, extension, out);
            }
        } else if path.extension().is_some_and(|e| e == extension) {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("runtime");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = vec![root.join("metaexec_app.py")];
    collect(&root.join("metaexec"), "py", &mut files);
    collect(&root.join("wit"), "wit", &mut files);
    let mut code = String::from("/// The guest app's files: path relative to `runtime/`, contents.\n");
    code.push_str("pub const GUEST_APP: &[(&str, &str)] = &[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let rel = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        writeln!(code, "    ({rel:?}, include_str!({:?})),", file.display().to_string()).unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guest_app.rs");
    std::fs::write(out, code).unwrap();
}
