//! Which backend can run a script: the WASI sandbox when everything it imports is there
//! (the standard library of the pinned CPython and `metaexec`), Docker otherwise, with
//! the packages to install.
//!
//! The module lists below were read off the pinned interpreter itself
//! (`sys.stdlib_module_names`, then an import of each inside the sandbox).

use serde::{Deserialize, Serialize};

use super::semantic::Semantic;

/// The standard library of CPython 3.14, as `sys.stdlib_module_names` lists it (private
/// `_modules` are taken as standard too).
pub const STDLIB: &[&str] = &[
    "abc",
    "annotationlib",
    "antigravity",
    "argparse",
    "array",
    "ast",
    "asyncio",
    "atexit",
    "base64",
    "bdb",
    "binascii",
    "bisect",
    "builtins",
    "bz2",
    "cProfile",
    "calendar",
    "cmath",
    "cmd",
    "code",
    "codecs",
    "codeop",
    "collections",
    "colorsys",
    "compileall",
    "compression",
    "concurrent",
    "configparser",
    "contextlib",
    "contextvars",
    "copy",
    "copyreg",
    "csv",
    "ctypes",
    "curses",
    "dataclasses",
    "datetime",
    "dbm",
    "decimal",
    "difflib",
    "dis",
    "doctest",
    "email",
    "encodings",
    "ensurepip",
    "enum",
    "errno",
    "faulthandler",
    "fcntl",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gc",
    "genericpath",
    "getopt",
    "getpass",
    "gettext",
    "glob",
    "graphlib",
    "grp",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http",
    "idlelib",
    "imaplib",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "linecache",
    "locale",
    "logging",
    "lzma",
    "mailbox",
    "marshal",
    "math",
    "mimetypes",
    "mmap",
    "modulefinder",
    "msvcrt",
    "multiprocessing",
    "netrc",
    "nt",
    "ntpath",
    "nturl2path",
    "numbers",
    "opcode",
    "operator",
    "optparse",
    "os",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "posix",
    "posixpath",
    "pprint",
    "profile",
    "pstats",
    "pty",
    "pwd",
    "py_compile",
    "pyclbr",
    "pydoc",
    "pydoc_data",
    "pyexpat",
    "queue",
    "quopri",
    "random",
    "re",
    "readline",
    "reprlib",
    "resource",
    "rlcompleter",
    "runpy",
    "sched",
    "secrets",
    "select",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "site",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "sre_compile",
    "sre_constants",
    "sre_parse",
    "ssl",
    "stat",
    "statistics",
    "string",
    "stringprep",
    "struct",
    "subprocess",
    "symtable",
    "sys",
    "sysconfig",
    "syslog",
    "tabnanny",
    "tarfile",
    "tempfile",
    "termios",
    "textwrap",
    "this",
    "threading",
    "time",
    "timeit",
    "tkinter",
    "token",
    "tokenize",
    "tomllib",
    "trace",
    "traceback",
    "tracemalloc",
    "tty",
    "turtle",
    "turtledemo",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "urllib",
    "uuid",
    "venv",
    "warnings",
    "wave",
    "weakref",
    "webbrowser",
    "winreg",
    "winsound",
    "wsgiref",
    "xml",
    "xmlrpc",
    "zipapp",
    "zipfile",
    "zipimport",
    "zlib",
    "zoneinfo",
];

/// Standard modules the WASI build lacks (no C extension, or no OS support), or has but
/// cannot use (processes, a browser, package installation).
pub const MISSING_IN_WASI: &[&str] = &[
    "antigravity",
    "bz2",
    "ctypes",
    "curses",
    "ensurepip",
    "fcntl",
    "grp",
    "idlelib",
    "lzma",
    "mmap",
    "msvcrt",
    "multiprocessing",
    "nt",
    "pty",
    "pwd",
    "pydoc_data",
    "readline",
    "resource",
    "rlcompleter",
    "ssl",
    "syslog",
    "termios",
    "tkinter",
    "tty",
    "turtle",
    "turtledemo",
    "venv",
    "webbrowser",
    "winreg",
    "winsound",
];

/// Packages whose import name differs from the name to install.
const DISTRIBUTIONS: &[(&str, &str)] = &[
    ("sklearn", "scikit-learn"),
    ("cv2", "opencv-python"),
    ("PIL", "Pillow"),
    ("yaml", "PyYAML"),
    ("bs4", "beautifulsoup4"),
    ("dateutil", "python-dateutil"),
    ("dotenv", "python-dotenv"),
    ("psycopg2", "psycopg2-binary"),
    ("MySQLdb", "mysqlclient"),
    ("jwt", "PyJWT"),
    ("docx", "python-docx"),
    ("pptx", "python-pptx"),
    ("Crypto", "pycryptodome"),
    ("attr", "attrs"),
    ("google.protobuf", "protobuf"),
];

/// Modules whose import means the script serves a web application.
const WEB_FRAMEWORKS: &[&str] = &[
    "flask",
    "wsgiref",
    "fastapi",
    "django",
    "streamlit",
    "dash",
    "uvicorn",
    "gunicorn",
    "bottle",
    "tornado",
    "gradio",
    "starlette",
    "aiohttp",
];

/// Calls that keep a server running.
const SERVE_CALLS: &[&str] = &["serve_forever", "run_server", "run_forever"];

/// Where a script should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded WASI sandbox.
    Wasi,
    /// A Docker container.
    Docker,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Wasi => "wasi",
            Backend::Docker => "docker",
        })
    }
}

/// What the caller asks for: a backend, or the validator's choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendRequest {
    /// Choose from the imports.
    #[default]
    Auto,
    /// The script must run in the WASI sandbox.
    Wasi,
    /// The script will run in Docker.
    Docker,
}

/// The chosen backend and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendChoice {
    /// The backend.
    pub backend: Backend,
    /// Why, in words.
    pub reason: String,
    /// Third-party packages to install (`requirements.txt` lines), sorted.
    pub packages: Vec<String>,
    /// Whether the script serves a web application (and so must keep running).
    pub serves_web: bool,
}

/// Whether `module` (a top-level name) is in the standard library.
pub fn is_stdlib(module: &str) -> bool {
    module.starts_with('_') || STDLIB.binary_search(&module).is_ok()
}

/// Modules the WASI runtime has besides the standard library: the guest library, its
/// entry module and the component's bindings. None is a package to install.
const RUNTIME_MODULES: &[&str] = &[
    "componentize_py_async_support",
    "componentize_py_runtime",
    "componentize_py_types",
    "metaexec",
    "metaexec_app",
    "poll_loop",
    "wit_world",
];

/// Whether `module` (a top-level name) is one the WASI runtime carries besides the
/// standard library.
pub fn is_runtime_module(module: &str) -> bool {
    RUNTIME_MODULES.contains(&module)
}

/// Whether a script may import `module` (a top-level name) in the WASI runtime: the
/// standard library it has and `metaexec`. (The runtime's other modules import there, but
/// are its own interface: scripts reach the host through `metaexec`.)
pub fn available_in_wasi(module: &str) -> bool {
    module == "metaexec" || (is_stdlib(module) && !MISSING_IN_WASI.contains(&module))
}

/// The name to `pip install` for an import.
fn distribution(import: &str) -> String {
    DISTRIBUTIONS.iter().find(|(m, _)| *m == import).map_or_else(|| import.to_string(), |(_, d)| d.to_string())
}

/// Chooses the backend for a script from its imports and calls.
pub fn choose<'c>(
    semantic: &Semantic<'_>,
    callees: impl IntoIterator<Item = &'c str>,
    request: BackendRequest,
) -> BackendChoice {
    let mut third_party: Vec<&str> = Vec::new();
    let mut web: Vec<&str> = Vec::new();
    for import in &semantic.imports {
        for module in import.top_level_modules() {
            if !is_runtime_module(module) && !is_stdlib(module) && !third_party.contains(&module) {
                third_party.push(module);
            }
            if WEB_FRAMEWORKS.contains(&module) && !web.contains(&module) {
                web.push(module);
            }
        }
    }
    let serve_call = callees.into_iter().find(|c| SERVE_CALLS.iter().any(|s| c.rsplit('.').next() == Some(*s)));
    let serves_web = !web.is_empty() || serve_call.is_some();
    let mut packages: Vec<String> = third_party.iter().map(|m| distribution(m)).collect();
    packages.sort();
    let (backend, reason) = match request {
        BackendRequest::Wasi => (Backend::Wasi, "the WASI sandbox was requested".to_string()),
        BackendRequest::Docker => (Backend::Docker, "Docker was requested".to_string()),
        BackendRequest::Auto if serves_web => {
            let what = web.first().map_or_else(|| serve_call.unwrap_or_default().to_string(), |m| m.to_string());
            (Backend::Docker, format!("it serves a web application (`{what}`), which must keep running"))
        }
        BackendRequest::Auto if !third_party.is_empty() => {
            (Backend::Docker, format!("it imports packages outside the standard library: {}", third_party.join(", ")))
        }
        BackendRequest::Auto => {
            (Backend::Wasi, "every import is in the WASI runtime: the standard library and `metaexec`".to_string())
        }
    };
    BackendChoice { backend, reason, packages, serves_web }
}

/// The choice for a script that could not be read: what was asked for, or the sandbox.
pub fn choose_empty(request: BackendRequest) -> BackendChoice {
    let backend = if request == BackendRequest::Docker { Backend::Docker } else { Backend::Wasi };
    BackendChoice {
        backend,
        reason: "the script could not be read; nothing to go on".into(),
        packages: Vec::new(),
        serves_web: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_lists_are_sorted_for_binary_search() {
        assert!(STDLIB.windows(2).all(|w| w[0] < w[1]));
        assert!(MISSING_IN_WASI.iter().all(|m| is_stdlib(m)));
    }

    #[test]
    fn availability() {
        assert!(available_in_wasi("json") && available_in_wasi("metaexec") && available_in_wasi("_thread"));
        assert!(!available_in_wasi("tkinter") && !available_in_wasi("numpy"));
        // The runtime's own modules are no packages: a script reaching for them stays in WASI.
        assert!(is_runtime_module("wit_world") && !available_in_wasi("wit_world"));
        assert!(RUNTIME_MODULES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(distribution("sklearn"), "scikit-learn");
    }
}
