//! Who may call: every request is first checked for its `Host` (an IP address, `localhost`
//! or a configured name, so a web page cannot reach a local API by rebinding a name of its
//! own), then for the token. With a token configured, every call needs it (reads as well as
//! changes), except the probes `/healthz` and `/readyz`, the UI's static assets, and
//! `/metrics` when `api.public_metrics` says so. Without a token, reads are open (the
//! scheduler refuses to start that way on an address other than loopback unless
//! `api.allow_anonymous_reads` says so) and changes are off. A refused call is logged with
//! its method and path, never with what was offered.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Api;
use super::error::ApiError;
use sluice_runtime::config::Secret;

/// What the API lets through.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub token: Option<Secret>,
    /// `/metrics` without the token.
    pub public_metrics: bool,
    /// Host names besides IP addresses and `localhost`.
    pub allowed_hosts: Vec<String>,
}

impl Access {
    /// What a scheduler's settings let through (its API and, with HA, its standby's).
    pub fn of(settings: &sluice_runtime::config::Settings) -> Access {
        Access {
            token: settings.api_token.clone(),
            public_metrics: settings.public_metrics,
            allowed_hosts: settings.allowed_hosts.clone(),
        }
    }

    /// Whether a `Host` header names this server: an IP address, `localhost` or a
    /// configured name, with or without a port. A request without one (HTTP/1.0, in-process
    /// callers) has no name to rebind.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = host_name(host);
        name.eq_ignore_ascii_case("localhost")
            || name.parse::<std::net::IpAddr>().is_ok()
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

/// The name of a `Host` header without its port (`[::1]:8080` → `::1`).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Paths anyone may call: the probes, and the UI's stylesheet and script.
fn always_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz") || path.starts_with("/ui/assets/")
}

pub async fn guard(State(api): State<Api>, request: Request, next: Next) -> Response {
    check(&api.access, &api.log, request, next).await
}

/// The checks of [`guard`] for any server with an [`Access`] (the API, a standby's).
pub async fn check(
    access: &Access,
    log: &super::LogSink,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("?"));
    if !access.host_allowed(host) {
        log(&format!(
            "api: refused {} {} (Host `{}` is not a name of this scheduler)",
            request.method(),
            request.uri().path(),
            host.unwrap_or_default()
        ));
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "the Host `{}` is not a name of this scheduler",
                host.unwrap_or_default()
            ),
        )
        .hint("call it by IP address or localhost, or add the name to api.allowed_hosts")
        .into_response();
    }
    let path = request.uri().path();
    if always_open(path) || (path == "/metrics" && access.public_metrics) {
        return next.run(request).await;
    }
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let Some(token) = &access.token else {
        if reading {
            return next.run(request).await;
        }
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "changes through the API are off: no API token is configured",
        )
        .hint("set api.token in sluice.toml or SLUICE_API_TOKEN, then restart the scheduler")
        .into_response();
    };
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        // The UI's pages are plain navigations: for reads only, the token may come as the
        // `sluice_token` cookie the UI sets (never for changes, so no cross-site request
        // can change anything).
        .or_else(|| reading.then(|| cookie_token(&request)).flatten());
    match offered {
        Some(offered) if token.matches(offered.trim()) => next.run(request).await,
        other => {
            let why = if other.is_some() {
                "a wrong token"
            } else {
                "no token"
            };
            log(&format!(
                "api: refused {} {} ({why})",
                request.method(),
                request.uri().path()
            ));
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("this call needs the API token; the request had {why}"),
            )
            .hint("send `Authorization: Bearer <token>` (api.token in sluice.toml or SLUICE_API_TOKEN)")
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

fn cookie_token(request: &Request) -> Option<&str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("sluice_token="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_addresses_localhost_or_configured_names() {
        let access = Access {
            allowed_hosts: vec!["sluice.internal".into()],
            ..Access::default()
        };
        for ok in [
            None,
            Some("127.0.0.1:8080"),
            Some("localhost"),
            Some("LOCALHOST:80"),
            Some("[::1]:8080"),
            Some("10.0.0.7"),
            Some("sluice.internal:443"),
        ] {
            assert!(access.host_allowed(ok), "{ok:?}");
        }
        for refused in [
            Some("evil.example"),
            Some("evil.example:8080"),
            Some("localhost.evil.example"),
            Some("127.0.0.1.nip.io"),
            Some("?"),
            Some(""),
        ] {
            assert!(!access.host_allowed(refused), "{refused:?}");
        }
    }
}
