//! How the host touches a folder a guest can write (a results folder, and anything the
//! host writes next to the guest's files): through a capability handle, never by path.
//!
//! A guest can plant symbolic links in its results folder, including relative ones whose
//! target leaves it (`scenarios.csv -> ../../../home/me/.bashrc`). A host that then calls
//! `File::create(dir.join("scenarios.csv"))` follows the link and overwrites the target.
//! Here every open is relative to a `cap_std::fs::Dir`, which refuses any path that
//! resolves outside the folder, and a file is replaced by writing a fresh temporary file
//! (created exclusively, so it cannot be a link) and renaming it over the name: a rename
//! replaces a link instead of following it. After a run, [`GuestDir::sanitize`] removes the
//! links that lead outside the folder (or nowhere) and special files, so that neither
//! metaexec nor the user's own tools follow them later.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, FileType, FileTypeExt, OpenOptions};
use serde::{Deserialize, Serialize};

/// How deep [`GuestDir::sanitize`] looks into nested folders; deeper ones are removed
/// whole (a guest can nest folders far deeper than anyone needs).
const MAX_DEPTH: usize = 32;

/// A folder a guest could write, opened as a capability.
#[derive(Debug)]
pub struct GuestDir {
    dir: Dir,
    path: PathBuf,
}

/// Something [`GuestDir::sanitize`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanitized {
    /// Its path inside the folder.
    pub path: String,
    /// `link` (leading outside the folder, or nowhere), `fifo`, `socket`, `device`, or
    /// `too_deep` (a folder nested past the depth looked at).
    pub kind: String,
    /// Where a link pointed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl GuestDir {
    /// Opens the folder at `path`, creating it (and its parents) when missing. The path
    /// itself is the user's choice; only what is inside it is treated as untrusted.
    pub fn open(path: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(path)?;
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        Ok(Self { dir, path: path.to_owned() })
    }

    /// The folder's path on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file `name` with what `fill` writes. The data goes to a fresh
    /// temporary file first, which is then renamed over `name`: readers never see half a
    /// file, and a link planted at `name` is replaced, not followed. Returns the host path.
    pub fn write_with(&self, name: &str, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<PathBuf> {
        let temp = temp_name(name);
        let mut options = OpenOptions::new();
        // `create_new` fails on anything already there, a link included.
        options.write(true).create_new(true);
        let file = self.dir.open_with(&temp, &options)?;
        let mut out = io::BufWriter::with_capacity(1 << 20, file.into_std());
        let written = fill(&mut out).and_then(|()| out.flush()).and_then(|()| self.dir.rename(&temp, &self.dir, name));
        if written.is_err() {
            let _ = self.dir.remove_file(&temp);
        }
        written.map(|()| self.path.join(name))
    }

    /// Creates the folder `name` inside this one, and its parents; a path that would
    /// leave the folder is refused.
    pub fn create_dir_all(&self, name: &Path) -> io::Result<()> {
        self.dir.create_dir_all(name)
    }

    /// Replaces the file `name` with `bytes` (see [`GuestDir::write_with`]).
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        self.write_with(name, |out| out.write_all(bytes))
    }

    /// Removes, anywhere in the folder, every symbolic link whose target leaves the
    /// folder or does not exist, every special file (FIFO, socket, device), and folders
    /// nested deeper than anyone needs; returns what was removed, in the order found.
    /// Links that stay inside are kept: they can lead nowhere the folder does not.
    pub fn sanitize(&self) -> io::Result<Vec<Sanitized>> {
        let mut removed = Vec::new();
        let mut stack = vec![(self.dir.try_clone()?, PathBuf::new(), 0usize)];
        // Every entry is looked at, however many: a walk that stopped early would leave
        // a link planted past the point where it stopped.
        while let Some((dir, prefix, depth)) = stack.pop() {
            for entry in dir.entries()? {
                let entry = entry?;
                let name = entry.file_name();
                let relative = prefix.join(&name);
                let file_type = entry.file_type()?;
                if file_type.is_dir() {
                    if depth + 1 >= MAX_DEPTH {
                        dir.remove_dir_all(&name)?;
                        removed.push(Sanitized { path: display(&relative), kind: "too_deep".into(), target: None });
                    } else {
                        stack.push((dir.open_dir(&name)?, relative, depth + 1));
                    }
                    continue;
                }
                let Some(kind) = self.unsafe_kind(&relative, file_type) else { continue };
                let target = file_type.is_symlink().then(|| dir.read_link_contents(&name).map(|t| display(&t)));
                dir.remove_file(&name)?;
                removed.push(Sanitized {
                    path: display(&relative),
                    kind: kind.into(),
                    target: target.and_then(Result::ok),
                });
            }
        }
        Ok(removed)
    }

    /// Why an entry (not a folder) must go, if it must.
    fn unsafe_kind(&self, relative: &Path, file_type: FileType) -> Option<&'static str> {
        if file_type.is_symlink() {
            // `canonicalize` resolves the whole chain inside the capability and fails on
            // any step that leaves the folder, and on a target that does not exist.
            return self.dir.canonicalize(relative).is_err().then_some("link");
        }
        if file_type.is_fifo() {
            Some("fifo")
        } else if file_type.is_socket() {
            Some("socket")
        } else if file_type.is_block_device() || file_type.is_char_device() {
            Some("device")
        } else {
            None
        }
    }
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A name no other writer in this process uses at the same time.
fn temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = Path::new(name).file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let parent = Path::new(name).parent().filter(|p| !p.as_os_str().is_empty());
    let temp = format!(".{base}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    match parent {
        Some(parent) => parent.join(temp).to_string_lossy().into_owned(),
        None => temp,
    }
}

/// Opens `path` for reading without following a link: one planted in its place after it
/// was listed is refused (`ELOOP`) instead of read.
pub fn open_no_follow(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn writes_replace_planted_links_instead_of_following_them() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside.txt");
        std::fs::write(&outside, "precious").unwrap();
        let results = root.path().join("results");
        std::fs::create_dir(&results).unwrap();
        symlink("../outside.txt", results.join("scenarios.csv")).unwrap();
        symlink(&outside, results.join("abs.csv")).unwrap();
        let dir = GuestDir::open(&results).unwrap();
        dir.write("scenarios.csv", b"a,b\n").unwrap();
        dir.write("abs.csv", b"c\n").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(results.join("scenarios.csv")).unwrap(), "a,b\n");
        assert!(!std::fs::symlink_metadata(results.join("scenarios.csv")).unwrap().file_type().is_symlink());
        // A folder link that leaves is refused rather than followed.
        symlink("..", results.join("up")).unwrap();
        assert!(dir.write("up/outside.txt", b"x").is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
        // No temporary file is left behind by the failed write.
        let names: Vec<_> = std::fs::read_dir(&results).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn sanitize_removes_links_that_leave_and_special_files_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("secret"), "s").unwrap();
        let results = root.path().join("results");
        std::fs::create_dir_all(results.join("sub/deeper")).unwrap();
        std::fs::write(results.join("data.csv"), "x").unwrap();
        symlink("data.csv", results.join("inside")).unwrap();
        symlink("../secret", results.join("out")).unwrap();
        symlink("../../../secret", results.join("sub/deeper/out2")).unwrap();
        symlink("deeper/../../data.csv", results.join("sub/ok")).unwrap();
        symlink("missing", results.join("dangling")).unwrap();
        // A chain: each step inside, the last one out.
        symlink("hop", results.join("chain")).unwrap();
        symlink("../secret", results.join("hop")).unwrap();
        let fifo = std::ffi::CString::new(results.join("pipe").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        let dir = GuestDir::open(&results).unwrap();
        let mut removed: Vec<(String, String)> =
            dir.sanitize().unwrap().into_iter().map(|s| (s.path, s.kind)).collect();
        removed.sort();
        let expect = [("chain", "link"), ("dangling", "link"), ("hop", "link"), ("out", "link"), ("pipe", "fifo")];
        let mut expect: Vec<(String, String)> = expect.iter().map(|(p, k)| (p.to_string(), k.to_string())).collect();
        expect.push(("sub/deeper/out2".into(), "link".into()));
        expect.sort();
        assert_eq!(removed, expect);
        assert!(results.join("inside").exists() && results.join("sub/ok").exists());
        assert_eq!(std::fs::read_to_string(root.path().join("secret")).unwrap(), "s");
        assert!(dir.sanitize().unwrap().is_empty());
    }
}
