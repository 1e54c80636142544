//! Unpacking a part (a shard's `--out` folder, zipped by the driver) into `part-I`.
//!
//! A part comes from a process on another machine, so its zip is not trusted with paths:
//! an entry must be a plain relative path (no `..`, no absolute path, no backslash) and a
//! file or folder, never a symlink. Stricter than `ZipFile::enclosed_name`, which lets
//! `a/../b` through. The part is unpacked into a scratch folder next to its place and moved
//! there at the end, so a refused or broken part never leaves half a folder as `part-I`.

use std::fs::{self, File};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use super::RayError;

/// Unpacks `zip` (part `index` of job `job_id`) into `parts_dir/part-<index>`, replacing
/// what was there; returns that folder.
pub(super) fn unpack_part(zip: &[u8], parts_dir: &Path, index: usize, job_id: &str) -> Result<PathBuf, RayError> {
    let target = parts_dir.join(format!("part-{index}"));
    let scratch = parts_dir.join(format!(".part-{index}.unpacking"));
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| RayError::Unpack { index, path, source }
    };
    remove_if_present(&scratch).map_err(io_error(&scratch))?;
    fs::create_dir(&scratch).map_err(io_error(&scratch))?;
    let unpacked = unpack_into(zip, &scratch, index, job_id);
    if let Err(e) = unpacked {
        let _ = fs::remove_dir_all(&scratch);
        return Err(e);
    }
    remove_if_present(&target).map_err(io_error(&target))?;
    fs::rename(&scratch, &target).map_err(io_error(&target))?;
    Ok(target)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn unpack_into(zip: &[u8], dest: &Path, index: usize, job_id: &str) -> Result<(), RayError> {
    let corrupt = |e: zip::result::ZipError| RayError::PartCorrupt {
        job_id: job_id.to_owned(),
        index,
        reason: format!("it is not a readable zip: {e}"),
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(corrupt)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(corrupt)?;
        let name = entry.name().to_owned();
        let unsafe_part = |reason| RayError::UnsafePart { index, name: name.clone(), reason };
        if entry.is_symlink() {
            return Err(unsafe_part("is a symlink"));
        }
        let relative = plain_path(&name).ok_or_else(|| unsafe_part("is not a plain path inside the part's folder"))?;
        let path = dest.join(relative);
        let io_error = |source| RayError::Unpack { index, path: path.clone(), source };
        if entry.is_dir() {
            fs::create_dir_all(&path).map_err(io_error)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error)?;
        }
        // `create_new`: a name twice in one zip is refused, not overwritten.
        let mut file = File::create_new(&path).map_err(io_error)?;
        io::copy(&mut entry, &mut file).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => RayError::PartCorrupt {
                job_id: job_id.to_owned(),
                index,
                reason: format!("entry `{name}` does not decompress: {e}"),
            },
            _ => RayError::Unpack { index, path: path.clone(), source: e },
        })?;
    }
    Ok(())
}

/// `name` as a relative path of plain components, or `None`.
fn plain_path(name: &str) -> Option<PathBuf> {
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    if trimmed.is_empty() || trimmed.contains('\\') || trimmed.contains('\0') || trimmed.starts_with('/') {
        return None;
    }
    let mut path = PathBuf::new();
    for component in trimmed.split('/') {
        if component.is_empty() || component == "." || component == ".." || component.contains(':') {
            return None;
        }
        path.push(component);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            if name.ends_with('/') {
                zip.add_directory(*name, SimpleFileOptions::default()).unwrap();
            } else {
                zip.start_file(*name, SimpleFileOptions::default()).unwrap();
                zip.write_all(data).unwrap();
            }
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_part_is_unpacked_and_replaces_the_old_one() {
        let parts = tempfile::tempdir().unwrap();
        fs::create_dir_all(parts.path().join("part-2/stale")).unwrap();
        let zip = zip_of(&[("part.json", b"{}"), ("rows/", b""), ("rows/a.csv", b"x,y\n")]);
        let folder = unpack_part(&zip, parts.path(), 2, "job").unwrap();
        assert_eq!(folder, parts.path().join("part-2"));
        assert_eq!(fs::read(folder.join("part.json")).unwrap(), b"{}");
        assert_eq!(fs::read(folder.join("rows/a.csv")).unwrap(), b"x,y\n");
        assert!(!folder.join("stale").exists());
        assert!(!parts.path().join(".part-2.unpacking").exists());
    }

    #[test]
    fn zip_slip_is_refused_and_leaves_nothing() {
        let parts = tempfile::tempdir().unwrap();
        for name in ["../escape.txt", "a/../../escape.txt", "/etc/escape.txt", "a/./b", "c:\\escape", "a\\..\\b"] {
            let zip = zip_of(&[("ok.txt", b"fine"), (name, b"evil")]);
            let error = unpack_part(&zip, parts.path(), 0, "job").unwrap_err();
            assert!(matches!(&error, RayError::UnsafePart { name: n, .. } if n == name), "{name}: {error:?}");
            assert!(error.to_string().contains("Refused"));
        }
        assert_eq!(fs::read_dir(parts.path()).unwrap().count(), 0, "nothing is left behind");
        assert!(!parts.path().parent().unwrap().join("escape.txt").exists());
    }

    #[test]
    fn a_symlink_is_refused() {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.add_symlink("link", "/etc/passwd", SimpleFileOptions::default()).unwrap();
        let zip = zip.finish().unwrap().into_inner();
        let parts = tempfile::tempdir().unwrap();
        let error = unpack_part(&zip, parts.path(), 1, "job").unwrap_err();
        assert!(matches!(error, RayError::UnsafePart { reason: "is a symlink", .. }), "{error:?}");
    }

    #[test]
    fn bytes_that_are_not_a_zip_are_corrupt() {
        let parts = tempfile::tempdir().unwrap();
        let error = unpack_part(b"not a zip", parts.path(), 1, "job").unwrap_err();
        assert!(matches!(error, RayError::PartCorrupt { index: 1, .. }), "{error:?}");
    }
}
