//! Bearer tokens: mutating calls always need the configured token, reads only with
//! `api.token_for_reads`. A refused call is logged with its method, path and peer, never
//! with what was offered.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Api;
use super::error::ApiError;

pub async fn require_token(State(api): State<Api>, request: Request, next: Next) -> Response {
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let needed = !reading || api.token_for_reads;
    if !needed {
        return next.run(request).await;
    }
    let Some(token) = &api.token else {
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
            api.log(&format!(
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
