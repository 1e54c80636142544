//! Building the component: the guest app is unpacked into a scratch folder and handed to
//! componentize-py, which links CPython, imports the entry module (and with it everything
//! the snapshot should hold) and writes the pre-initialised component. It is installed
//! with its SHA-256 beside it, through a temporary file and a rename.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use super::tool::ToolDir;
use super::{MANIFEST, RuntimeError, app, runtime_dir};

/// Builds the component into `target` (and its digest beside it).
pub fn build(cache_root: &Path, tool: &ToolDir, target: &Path, progress: &dyn Fn(&str)) -> Result<(), RuntimeError> {
    let started = Instant::now();
    progress(&format!("building the runtime component with {} (about 10 s, once)", MANIFEST.tool_requirement()));
    let work = runtime_dir(cache_root).join(format!(".build-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RuntimeError::Io { path, source }
    };
    let _ = std::fs::remove_dir_all(&work);
    let result = (|| {
        let app_dir = work.join("app");
        std::fs::create_dir_all(&app_dir).map_err(io(&app_dir))?;
        app::unpack(&app_dir).map_err(io(&app_dir))?;
        let output_file = work.join("component.wasm");
        let output = tool
            .command()
            .arg("--quiet")
            .arg("--wit-path")
            .arg(app_dir.join("wit"))
            .arg("--world")
            .arg(MANIFEST.world)
            .arg("componentize")
            .arg(MANIFEST.app_module)
            .arg("--python-path")
            .arg(&app_dir)
            .arg("--output")
            .arg(&output_file)
            .current_dir(&work)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| RuntimeError::Build(format!("could not start {}: {e}", tool.python)))?;
        if !output.status.success() {
            let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !stdout.trim().is_empty() {
                text = format!("{}\n{text}", stdout.trim());
            }
            return Err(RuntimeError::Build(text));
        }
        let bytes = std::fs::read(&output_file).map_err(io(&output_file))?;
        crate::cache::write_with_digest(target, &bytes).map_err(io(target))
    })();
    let _ = std::fs::remove_dir_all(&work);
    result?;
    progress(&format!("built the runtime component in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(())
}
