//! A script packaged to run by hand with plain Docker on any machine that reaches a
//! registry: the script, `requirements.txt`, a `Dockerfile`, a `docker-compose.yml` with
//! the run's limits, an executable `deploy.sh`, `.env.example` (the names of the settings
//! it reads, never their values), a `README.md`, and the guest library, so the same script
//! works in both backends. Outside metaexec the library runs standalone: parameters from
//! `METAEXEC_PARAMS`, results into `results.json`, data from `DATABASE_URL` (SQLite).

use std::path::{Path, PathBuf};

use super::container::{ContainerLimits, WEB_PORT};
use super::image::{library_files, requirements_txt};
use crate::job::{Job, Limits};
use crate::validate::BackendChoice;

/// What a package is made from.
pub struct PackageSpec<'a> {
    /// The script's file name (`analysis.py`).
    pub script_name: &'a str,
    /// Its source.
    pub source: &'a str,
    /// `requirements.txt` lines.
    pub packages: &'a [String],
    /// Whether it serves a web application.
    pub web: bool,
    /// The run's limits.
    pub limits: &'a Limits,
    /// Docker's own limits.
    pub container: ContainerLimits,
    /// The base image to build on.
    pub base_image: &'a str,
}

impl<'a> PackageSpec<'a> {
    /// The package of `job`'s script as the validator chose its backend (its packages,
    /// whether it serves), with the default container limits.
    pub fn new(job: &'a Job, choice: &'a BackendChoice, base_image: &'a str) -> Self {
        Self {
            script_name: &job.script_name,
            source: &job.source,
            packages: &choice.packages,
            web: choice.serves_web,
            limits: &job.limits,
            container: ContainerLimits::default(),
            base_image,
        }
    }
}

/// The files written, relative to the package folder.
pub const FILES: &[&str] =
    &["Dockerfile", "docker-compose.yml", "deploy.sh", ".env.example", "README.md", "requirements.txt"];

/// Writes the package into `dir` (created if missing); the paths written.
pub fn write(dir: &Path, spec: &PackageSpec<'_>) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let script = safe_name(spec.script_name);
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> std::io::Result<()> {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written.push(path);
        Ok(())
    };
    put(&script, spec.source)?;
    put("requirements.txt", &requirements_txt(spec.packages))?;
    put("Dockerfile", &dockerfile(spec, &script))?;
    put("docker-compose.yml", &compose(spec))?;
    put("deploy.sh", &deploy_sh(spec))?;
    put(".env.example", &env_example(spec.source))?;
    put("README.md", &readme(spec, &script))?;
    for (path, text) in library_files() {
        put(path, text)?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("deploy.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(written)
}

/// The script's name as a plain file name in the package.
fn safe_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() || cleaned == "py" {
        "script.py".into()
    } else if cleaned.ends_with(".py") {
        cleaned.to_owned()
    } else {
        format!("{cleaned}.py")
    }
}

fn dockerfile(spec: &PackageSpec<'_>, script: &str) -> String {
    let mut file = format!(
        "# Built by metaexec. `docker compose up --build` runs it; see README.md.\n\
         FROM {base}\n\
         WORKDIR /app\n\
         COPY requirements.txt /app/requirements.txt\n",
        base = spec.base_image
    );
    if !spec.packages.is_empty() {
        file.push_str(
            "RUN python3 -m pip install --no-cache-dir --disable-pip-version-check --break-system-packages \
             -r /app/requirements.txt\n",
        );
    }
    file.push_str(&format!(
        "COPY metaexec /opt/metaexec/metaexec\n\
         COPY {script} /app/{script}\n\
         ENV PYTHONPATH=/opt/metaexec PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1\n\
         RUN mkdir -p /results && chmod 0777 /results\n\
         WORKDIR /results\n"
    ));
    if spec.web {
        file.push_str(&format!("ENV METAEXEC_WEB=1 METAEXEC_PORT={WEB_PORT}\nEXPOSE {WEB_PORT}\n"));
    }
    file.push_str(&format!(
        "USER 65534:65534\nCMD [\"python3\", \"-m\", \"metaexec._container\", \"/app/{script}\"]\n"
    ));
    file
}

fn compose(spec: &PackageSpec<'_>) -> String {
    let memory_mib = spec.limits.memory_bytes / (1024 * 1024);
    let mut file = format!(
        "# Built by metaexec: the limits the script ran under.\n\
         services:\n  app:\n    build: .\n    read_only: true\n    tmpfs:\n      - /tmp:size={tmp}m\n    \
         mem_limit: {memory_mib}m\n    memswap_limit: {memory_mib}m\n    cpus: {cpus}\n    pids_limit: {pids}\n    \
         cap_drop: [ALL]\n    security_opt: [\"no-new-privileges:true\"]\n    \
         environment:\n      METAEXEC_PARAMS: ${{METAEXEC_PARAMS:-{{}}}}\n      DATABASE_URL: ${{DATABASE_URL:-}}\n    \
         volumes:\n      - ./results:/results\n",
        tmp = spec.container.tmp_mib,
        cpus = spec.container.cpus,
        pids = spec.container.pids,
    );
    if spec.web {
        file.push_str(&format!(
            "    restart: unless-stopped\n    ports:\n      - \"127.0.0.1:${{PORT:-{WEB_PORT}}}:{WEB_PORT}\"\n    \
             healthcheck:\n      test: [\"CMD\", \"python3\", \"-c\", \"import urllib.request; \
             urllib.request.urlopen('http://127.0.0.1:{WEB_PORT}/', timeout=2)\"]\n      interval: 10s\n      \
             timeout: 3s\n      retries: 3\n"
        ));
    } else {
        file.push_str("    restart: \"no\"\n    network_mode: none\n");
    }
    file
}

fn deploy_sh(spec: &PackageSpec<'_>) -> String {
    let what = if spec.web {
        format!("docker compose up --build --detach\necho \"serving on http://127.0.0.1:${{PORT:-{WEB_PORT}}}/\"\n")
    } else {
        "docker compose up --build --abort-on-container-exit --exit-code-from app\n\
         echo \"results are in ./results\"\n"
            .to_owned()
    };
    format!(
        "#!/usr/bin/env sh\n# Builds and runs the packaged script with Docker Compose.\nset -eu\ncd \"$(dirname \"$0\")\"\n\
         [ -f .env ] || cp .env.example .env\nmkdir -p results\n{what}"
    )
}

/// The environment variables the script reads (`os.environ["X"]`, `os.environ.get("X")`,
/// `os.getenv("X")`) and the library's own, as names with no values.
pub fn env_example(source: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    for pattern in ["os.environ[", "os.environ.get(", "os.getenv(", "environ.get(", "getenv("] {
        let mut rest = source;
        while let Some(at) = rest.find(pattern) {
            rest = &rest[at + pattern.len()..];
            let quoted = rest.trim_start();
            let Some(quote) = quoted.chars().next().filter(|c| *c == '"' || *c == '\'') else { continue };
            let inner = &quoted[1..];
            if let Some(end) = inner.find(quote) {
                let name = &inner[..end];
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !names.iter().any(|n| n == name)
                {
                    names.push(name.to_owned());
                }
            }
        }
    }
    let mut file = String::from(
        "# Settings the script reads. Copy to .env and fill in; never commit real values.\n\
         # The script's parameters, as a JSON object (metaexec.params).\nMETAEXEC_PARAMS=\n\
         # The data, as sqlite:///path/to/file.db (read-only).\nDATABASE_URL=\n",
    );
    names.retain(|n| n != "METAEXEC_PARAMS" && n != "DATABASE_URL");
    if !names.is_empty() {
        file.push_str("# Read by the script.\n");
        for name in names {
            file.push_str(&format!("{name}=\n"));
        }
    }
    file
}

fn readme(spec: &PackageSpec<'_>, script: &str) -> String {
    let packages = if spec.packages.is_empty() { "none".to_owned() } else { spec.packages.join(", ") };
    let run = if spec.web {
        format!(
            "The script serves a web application on port {WEB_PORT}, published on 127.0.0.1 only \
             (`PORT` in `.env` picks the host port).\n\n```sh\n./deploy.sh            # or: docker compose up --build -d\n\
             docker compose down    # stop it\n```\n"
        )
    } else {
        "```sh\n./deploy.sh            # or: docker compose up --build --abort-on-container-exit\n```\n\n\
         Results land in `./results/results.json` (and any files the script writes).\n"
            .to_owned()
    };
    format!(
        "# {script}, packaged by metaexec\n\n\
         Packages: {packages}. Base image: `{base}` (change `FROM` in the Dockerfile to use another;\n\
         `python:3.12-slim` where a registry is reachable).\n\n## Run it\n\n{run}\n\
         ## Settings\n\n`cp .env.example .env` and fill it in: `METAEXEC_PARAMS` is a JSON object of parameters\n\
         (`{{\"noi_change\": -0.1}}`), `DATABASE_URL` a SQLite file (`sqlite:////results/data.db`).\n\
         Outside metaexec there is no database proxy: the library opens that file read-only itself.\n\n\
         ## Limits\n\nThe compose file keeps the limits the script ran under: {memory} MiB of memory, {cpus} CPU,\n\
         {pids} processes, a read-only root with a {tmp} MiB `/tmp`, no capabilities{network}.\n\n\
         `metaexec/` is the guest library the script imports; it is the same code metaexec runs.\n",
        base = spec.base_image,
        memory = spec.limits.memory_bytes / (1024 * 1024),
        cpus = spec.container.cpus,
        pids = spec.container.pids,
        tmp = spec.container.tmp_mib,
        network = if spec.web { "" } else { ", no network" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_example_names_what_the_script_reads_and_no_values() {
        let source =
            "import os\nkey = os.environ['API_KEY']\nr = os.getenv(\"REGION\", 'eu')\nx = os.environ.get( 'API_KEY')\n";
        let text = env_example(source);
        assert!(text.contains("\nAPI_KEY=\n") && text.contains("\nREGION=\n"), "{text}");
        assert_eq!(text.matches("API_KEY").count(), 1);
        assert!(!text.contains("eu"), "{text}");
    }

    #[test]
    fn a_script_name_becomes_a_plain_file_name() {
        assert_eq!(safe_name("analysis.py"), "analysis.py");
        assert_eq!(safe_name("../../etc/x"), "_.._etc_x.py");
        assert_eq!(safe_name(".py"), "script.py");
    }
}
