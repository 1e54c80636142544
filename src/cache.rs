//! Where metaexec keeps what it downloads and derives: the WASI CPython, its compiled
//! form and the unpacked guest library.
//!
//! `METAEXEC_CACHE_DIR` wins; otherwise the platform's user cache directory
//! (`~/.cache/metaexec` on Linux). Everything in it can be deleted at any time and is
//! rebuilt on demand. It lives outside any target or project folder so that builds,
//! test runs and projects share one compiled interpreter.
//!
//! The cache holds native code (the compiled interpreter is loaded and run as it is), so
//! it is private and checked:
//!
//! - folders metaexec creates are owner-only (0700 on unix), files it writes 0600;
//! - files are written through a fresh temporary file (never one that already exists,
//!   so never through a planted link) and a rename, so a reader never sees half a file;
//! - a file that must not change behind metaexec's back ([`write_with_digest`]) has its
//!   SHA-256 beside it, and [`read_with_digest`] hands over only bytes that match it:
//!   the bytes checked are the bytes returned, so nothing can swap the file between
//!   the check and the use;
//! - reading and hashing a large file on every start costs more than the start itself
//!   (the compiled interpreter is 27 MB: ~70 ms), so a verified file's identity is
//!   recorded beside it ([`mark_verified`]): device, inode, size, modification and change
//!   time. Any write to the file, or a file put in its place, changes the change time,
//!   which no unprivileged call can set back, so [`verified_unchanged`] lets a later start
//!   skip the hash for exactly the bytes that were checked. Swapping the file between that
//!   look and its use needs write access to the owner-only folder, that is, the user's
//!   own rights.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

/// The environment variable that moves the cache.
pub const CACHE_DIR_ENV: &str = "METAEXEC_CACHE_DIR";

/// The suffix of the file holding another file's SHA-256.
pub const DIGEST_SUFFIX: &str = ".sha256";

/// The cache root.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("metaexec")
}

/// Creates `dir` and its missing parents owner-only (0700 on unix). Folders that already
/// exist keep their permissions: a cache root the user chose may be shared on purpose;
/// use [`restrict_dir`] on folders that are metaexec's alone.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `dir` owner-only, and makes it owner-only if it already existed.
pub fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    create_private_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a new owner-only temporary file in the same folder
/// (created owner-only if missing) and a rename, so a concurrent reader never sees a
/// half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| file.write_all(bytes));
    written.and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The file holding the SHA-256 of `path`: `<path>.sha256`.
pub fn digest_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(DIGEST_SUFFIX);
    PathBuf::from(name)
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::python_wasm::hex(&Sha256::digest(bytes))
}

/// Writes `bytes` to `path` and their SHA-256 to [`digest_path`] (`sha256sum` format),
/// each atomically and owner-only. The file goes first: a crash between the two leaves
/// a file without a digest, which [`read_with_digest`] refuses.
pub fn write_with_digest(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically(path, bytes)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    write_atomically(&digest_path(path), format!("{}  {name}\n", sha256_hex(bytes)).as_bytes())
}

/// Removes `path`, its digest file and its verification mark, ignoring files that are
/// already gone.
pub fn remove_with_digest(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(digest_path(path));
    let _ = std::fs::remove_file(stamp_path(path));
}

/// The file recording the identity of `path` when it was last verified.
fn stamp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".verified");
    PathBuf::from(name)
}

/// `path`'s identity as the file system keeps it, with its digest file's contents: what
/// changes when either file is written or replaced.
fn identity(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok().filter(std::fs::Metadata::is_file)?;
    let digest = std::fs::read_to_string(digest_path(path)).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Some(format!(
            "{} {} {} {}.{} {}.{} {}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            digest.trim()
        ))
    }
    #[cfg(not(unix))]
    {
        // Without a change time there is nothing a writer cannot reset: always hash.
        let _ = (meta, digest);
        None
    }
}

/// Records that `path` (with its digest file) was just verified.
pub fn mark_verified(path: &Path) -> std::io::Result<()> {
    match identity(path) {
        Some(identity) => write_atomically(&stamp_path(path), identity.as_bytes()),
        None => Ok(()),
    }
}

/// True when `path` and its digest file are, by identity, exactly what [`mark_verified`]
/// last recorded: the bytes checked then are still the bytes there.
pub fn verified_unchanged(path: &Path) -> bool {
    let Some(identity) = identity(path) else { return false };
    std::fs::read(stamp_path(path)).is_ok_and(|recorded| recorded == identity.as_bytes())
}

/// Why a cached file was refused.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    /// The file has no digest beside it (written by something else, or interrupted).
    #[error("`{}` has no checksum file", path.display())]
    NoDigest {
        /// The file.
        path: PathBuf,
    },
    /// The digest file does not hold a SHA-256.
    #[error("the checksum file of `{}` does not hold a SHA-256", path.display())]
    BadDigest {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a regular file, or is larger than anything metaexec writes there.
    #[error("`{}` is not a regular file of at most {max_bytes} bytes", path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// The largest size accepted.
        max_bytes: u64,
    },
    /// The file's contents differ from what was written.
    #[error("`{}` has SHA-256 {actual}, its checksum file says {expected} (corrupted or tampered)", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The digest file's hash.
        expected: String,
        /// The file's hash.
        actual: String,
    },
    /// The file or its digest could not be read.
    #[error("Failed to read `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Reads `path` if it exists and matches the SHA-256 in its digest file: `Ok(None)` when
/// there is no such file, the checked bytes when it verifies, an error saying why not
/// otherwise (links, special files and files over `max_bytes` are refused unread).
pub fn read_with_digest(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, IntegrityError> {
    let io = |source| IntegrityError::Io { path: path.to_owned(), source };
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if !metadata.is_file() || metadata.len() > max_bytes {
        return Err(IntegrityError::NotAFile { path: path.to_owned(), max_bytes });
    }
    let expected = match std::fs::read(digest_path(path)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IntegrityError::NoDigest { path: path.to_owned() });
        }
        Err(e) => return Err(io(e)),
    };
    let expected = expected
        .get(..64)
        .filter(|hex| hex.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)))
        .filter(|_| expected.get(64).is_none_or(|b| b.is_ascii_whitespace()))
        .map(|hex| String::from_utf8_lossy(hex).into_owned())
        .ok_or_else(|| IntegrityError::BadDigest { path: path.to_owned() })?;
    // Read through one handle, bounded: the file may have grown since `metadata`.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    let file = std::fs::File::open(path).map_err(io)?;
    std::io::Read::read_to_end(&mut std::io::Read::take(file, max_bytes.saturating_add(1)), &mut bytes).map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(IntegrityError::NotAFile { path: path.to_owned(), max_bytes });
    }
    let actual = sha256_hex(&bytes);
    if actual != expected {
        return Err(IntegrityError::Mismatch { path: path.to_owned(), expected, actual });
    }
    Ok(Some(bytes))
}

/// A folder for short-lived files of this process's commands (removed by whoever creates
/// entries in it).
pub fn scratch_dir(cache_root: &Path) -> PathBuf {
    cache_root.join("scratch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_and_refuse_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b").join("module.cwasm");
        assert!(read_with_digest(&path, 1 << 20).unwrap().is_none(), "absent is not an error");
        write_with_digest(&path, b"native code").unwrap();
        assert_eq!(read_with_digest(&path, 1 << 20).unwrap().unwrap(), b"native code");
        let digest = std::fs::read_to_string(digest_path(&path)).unwrap();
        assert_eq!(digest, format!("{}  module.cwasm\n", sha256_hex(b"native code")));

        std::fs::write(&path, b"native cods").unwrap();
        let error = read_with_digest(&path, 1 << 20).unwrap_err();
        assert!(matches!(error, IntegrityError::Mismatch { .. }), "{error}");
        assert!(error.to_string().contains("tampered"), "{error}");

        assert_eq!(read_with_digest(&path, u64::MAX).unwrap_err().to_string(), error.to_string(), "no bound");
        assert!(matches!(read_with_digest(&path, 4).unwrap_err(), IntegrityError::NotAFile { .. }));
        std::fs::write(digest_path(&path), "not a hash").unwrap();
        assert!(matches!(read_with_digest(&path, 1 << 20).unwrap_err(), IntegrityError::BadDigest { .. }));
        remove_with_digest(&path);
        std::fs::write(&path, b"foreign").unwrap();
        assert!(matches!(read_with_digest(&path, 1 << 20).unwrap_err(), IntegrityError::NoDigest { .. }));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[cfg(unix)]
    #[test]
    fn folders_are_owner_only_and_files_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root").join("compiled").join("m.cwasm");
        write_with_digest(&path, b"x").unwrap();
        assert_eq!(mode(&dir.path().join("root")), 0o700);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&digest_path(&path)), 0o600);

        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755, "an existing folder keeps its mode");
        restrict_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let path = dir.path().join("cache").join("file");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(matches!(read_with_digest(&path, 1 << 20).unwrap_err(), IntegrityError::NotAFile { .. }));
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_verification_mark_holds_only_for_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code.cwasm");
        write_with_digest(&path, b"native code").unwrap();
        assert!(!verified_unchanged(&path), "nothing verified yet");
        mark_verified(&path).unwrap();
        assert!(verified_unchanged(&path));
        // Same length, one byte changed: the change time moves, the mark no longer holds.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&path, b"native cods").unwrap();
        assert!(!verified_unchanged(&path));
        mark_verified(&path).unwrap();
        std::fs::remove_file(digest_path(&path)).unwrap();
        assert!(!verified_unchanged(&path), "no digest, no trust");
        remove_with_digest(&path);
        assert!(!stamp_path(&path).exists());
    }
}
