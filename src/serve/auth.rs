//! Bearer-token checks. Off on loopback by default; required when the server is bound
//! to any other address. A browser cannot send a header when it follows a link, so a
//! page opened with `?token=TOKEN` sets an HTTP-only cookie that later requests carry.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The cookie a browser keeps the token in.
pub const COOKIE: &str = "metaexec_token";

/// Lets a request through when no token is set or it carries the right one. Without a
/// token (a loopback server), only requests addressed to a loopback name pass: a web
/// page elsewhere that rebinds its own name to 127.0.0.1 still sends that name, and is
/// refused.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = state.token.as_deref() else {
        if request.headers().get(header::HOST).is_some_and(|host| !is_loopback_name(host)) {
            return ApiError::forbidden_host().into_response();
        }
        return next.run(request).await;
    };
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .next();
    let query =
        request.uri().query().into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("token="));
    if bearer.or(cookie).is_some_and(|given| same(given, token)) {
        return next.run(request).await;
    }
    if query.is_some_and(|given| same(given, token)) {
        let mut response = next.run(request).await;
        let value = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        return response;
    }
    ApiError::unauthorized().into_response()
}

/// Whether a `Host` header names this machine's loopback: `localhost`, `127.x.x.x` or
/// `[::1]`, with any port.
fn is_loopback_name(host: &HeaderValue) -> bool {
    let Ok(host) = host.to_str() else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Compares in time that does not depend on where the strings differ.
fn same(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
