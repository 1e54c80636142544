//! Copying a container's results out of its staging folder into the user's results
//! folder, after the container is gone (so nothing changes under the copy): regular files
//! and folders only, no link followed, no permission bit but read, write and execute kept
//! for the owner and read/execute for others (a container's `chmod u+s` stays behind).
//! Whatever is left behind is reported as the WASI path reports what it removes.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::guest_dir::{GuestDir, Sanitized};

/// Folders nested deeper than this are left behind (as the WASI path removes them).
const MAX_DEPTH: usize = 32;

/// Copies what `staging` holds into `dest`; what was left behind, and why.
pub fn copy_out(staging: &Path, dest: &Path) -> io::Result<Vec<Sanitized>> {
    let target = GuestDir::open(dest)?;
    let mut left = Vec::new();
    let mut stack = vec![(PathBuf::new(), 0usize)];
    while let Some((relative, depth)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(staging.join(&relative))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = relative.join(entry.file_name());
            // `file_type` does not follow links.
            let file_type = entry.file_type()?;
            let shown = path.to_string_lossy().into_owned();
            if file_type.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    left.push(Sanitized { path: shown, kind: "too_deep".into(), target: None });
                } else {
                    target.create_dir_all(&path)?;
                    stack.push((path, depth + 1));
                }
            } else if file_type.is_file() {
                copy_file(&staging.join(&path), &target, &shown)?;
            } else {
                let kind = if file_type.is_symlink() {
                    "link"
                } else if file_type.is_fifo() {
                    "fifo"
                } else if file_type.is_socket() {
                    "socket"
                } else {
                    "device"
                };
                let link = file_type
                    .is_symlink()
                    .then(|| std::fs::read_link(entry.path()).ok().map(|t| t.to_string_lossy().into_owned()))
                    .flatten();
                left.push(Sanitized { path: shown, kind: kind.into(), target: link });
            }
        }
    }
    Ok(left)
}

fn copy_file(source: &Path, target: &GuestDir, name: &str) -> io::Result<()> {
    let mut file = crate::guest_dir::open_no_follow(source)?;
    let executable = file.metadata()?.permissions().mode() & 0o100 != 0;
    let written = target.write_with(name, |out| io::copy(&mut file, out).map(drop))?;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(written, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Links, special files and set-id bits stay behind; files and folders come out.
    #[test]
    fn only_plain_files_and_folders_come_out() {
        let staging = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim.txt");
        std::fs::write(&victim, "keep me").unwrap();
        std::fs::create_dir(staging.path().join("sub")).unwrap();
        std::fs::write(staging.path().join("sub/data.csv"), "a,b\n1,2\n").unwrap();
        std::fs::write(staging.path().join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(staging.path().join("tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink(&victim, staging.path().join("victim.txt")).unwrap();
        // A link already in the results folder is replaced, not followed.
        std::os::unix::fs::symlink(&victim, dest.path().join("report.txt")).unwrap();
        std::fs::write(staging.path().join("report.txt"), "new").unwrap();
        let left = copy_out(staging.path(), dest.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.path().join("sub/data.csv")).unwrap(), "a,b\n1,2\n");
        assert_eq!(std::fs::read_to_string(dest.path().join("report.txt")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        let mode = std::fs::metadata(dest.path().join("tool")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755, "{mode:o}");
        assert!(!dest.path().join("victim.txt").exists());
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].path.as_str(), left[0].kind.as_str()), ("victim.txt", "link"));
    }
}
