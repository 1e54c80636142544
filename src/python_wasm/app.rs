//! The guest app the component is built from, embedded in the binary at build time (see
//! `build.rs`): the WIT world, the entry module and the `metaexec` package. A binary is
//! self-contained: it unpacks these into a build folder instead of reading the source
//! tree.

use std::path::Path;

use sha2::{Digest, Sha256};

include!(concat!(env!("OUT_DIR"), "/guest_app.rs"));

/// A short hash of the app's contents.
pub fn content_hash() -> String {
    let mut hasher = Sha256::new();
    for (path, contents) in GUEST_APP {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(contents.as_bytes());
        hasher.update([0]);
    }
    super::hex(&hasher.finalize()[..8])
}

/// Writes the app's files under `dir` (which must be empty).
pub fn unpack(dir: &Path) -> std::io::Result<()> {
    for (path, contents) in GUEST_APP {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, contents)?;
    }
    Ok(())
}
