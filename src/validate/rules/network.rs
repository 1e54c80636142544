//! MX003 network: network clients and servers.
//!
//! What: imports of `socket`, `socketserver`, `ssl`, `urllib` / `urllib.request`,
//! `http.client`, `http.server`, the mail/FTP/news/telnet clients, `xmlrpc`, and the
//! third-party `requests`, `httpx`, `aiohttp`, `urllib3`, `websocket(s)`.
//!
//! Why: scripts reach data only through the database proxy; a network call is either an
//! exfiltration attempt or a hallucinated API. (The sandbox has no network either.)
//!
//! Example: `import requests` is reported; `from urllib.parse import quote` is not.

use super::{Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::semantic::find_import;

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX003",
    name: "network",
    severity: Severity::Error,
    penalty: 0.4,
    summary: "socket/urllib.request/http.client/requests/...: network access",
    check,
};

/// Network modules; `=` marks a name that matches only exactly (`urllib.parse` is fine).
pub(super) const MODULES: &[&str] = &[
    "socket",
    "socketserver",
    "ssl",
    "=urllib",
    "urllib.request",
    "urllib.error",
    "http.client",
    "http.server",
    "http.cookiejar",
    "ftplib",
    "smtplib",
    "poplib",
    "imaplib",
    "nntplib",
    "telnetlib",
    "xmlrpc",
    "requests",
    "httpx",
    "aiohttp",
    "urllib3",
    "websocket",
    "websockets",
];

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for (import, module) in find_import(&cx.semantic.imports, MODULES) {
        out.push(Hit::new(
            import.span(),
            format!("`{module}` opens network connections; scripts have no network"),
            Some("read data with `metaexec.db.query`; the host provides everything a script may use"),
        ));
    }
}
