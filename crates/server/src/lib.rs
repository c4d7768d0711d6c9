//! Sluice's server: the REST API (`api`) and the web UI (`ui`), served by the scheduler
//! process on a small tokio runtime of its own, so a slow client never touches the
//! scheduling loop. The UI renders the API's views (`api::views`); the API does not know the
//! UI exists: this module puts the two side by side behind one token check.

pub mod api;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

pub use api::Api;

/// Every route, API and UI, with the token check in front.
pub fn router(api: Api) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(ui::router())
        .fallback(api::health::not_found)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            api::auth::guard,
        ))
        // Outside the guard: a page refused for want of the token becomes a sign-in page.
        .layer(axum::middleware::from_fn(ui::sign_in_when_refused))
        .with_state(api)
}

/// The server running in the background; stops with the process.
pub struct Server {
    pub address: SocketAddr,
}

/// Binds `address` (port 0 picks a free one) and serves the API and UI on a thread of its
/// own.
pub fn serve(address: SocketAddr, api: Api) -> std::io::Result<Server> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-api")
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("sluice-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let log = Arc::clone(&api.log);
                if let Err(e) = axum::serve(listener, router(api)).await {
                    log(&format!("api: server stopped: {e}"));
                }
            });
        })?;
    Ok(Server { address: bound })
}
