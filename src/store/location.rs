//! Where run folders go: `--runs DIR`, else `METAEXEC_RUNS_DIR`, else the `[runs] dir` of
//! the config file, else `runs/` in the working directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default runs folder, relative to the working directory.
pub const DEFAULT_RUNS_DIR: &str = "runs";
/// The environment variable naming the runs folder.
pub const RUNS_DIR_ENV: &str = "METAEXEC_RUNS_DIR";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    runs: RunsTable,
}

/// The `[runs]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RunsTable {
    dir: Option<PathBuf>,
}

/// The runs folder: the flag, else the environment, else the config file (`config`,
/// when there is one), else [`DEFAULT_RUNS_DIR`]. A config file that exists but does not
/// parse is an error that names it, not a silent fallback.
pub fn runs_root(flag: Option<&Path>, env: Option<&str>, config: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    if let Some(dir) = env.map(str::trim).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(path) = config {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let file: FileConfig = toml::from_str(&text)
                    .map_err(|e| format!("the config file `{}` is not valid: {e}", path.display()))?;
                if let Some(dir) = file.runs.dir {
                    // A relative folder in the config file is relative to the file.
                    return Ok(if dir.is_relative() { path.parent().unwrap_or(Path::new(".")).join(dir) } else { dir });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("failed to read the config file `{}`: {e}", path.display())),
        }
    }
    Ok(PathBuf::from(DEFAULT_RUNS_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_environment_then_config_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "[llm]\nmodel = \"m\"\n[runs]\ndir = \"kept\"\n").unwrap();
        let flag = Path::new("/flag");
        assert_eq!(runs_root(Some(flag), Some("/env"), Some(&config)).unwrap(), flag);
        assert_eq!(runs_root(None, Some("/env"), Some(&config)).unwrap(), Path::new("/env"));
        assert_eq!(runs_root(None, Some(" "), Some(&config)).unwrap(), dir.path().join("kept"));
        assert_eq!(runs_root(None, None, Some(&dir.path().join("none.toml"))).unwrap(), Path::new("runs"));
        std::fs::write(&config, "[runs]\ndirectory = \"typo\"\n").unwrap();
        let error = runs_root(None, None, Some(&config)).unwrap_err();
        assert!(error.contains("config.toml") && error.contains("directory"), "{error}");
    }
}
