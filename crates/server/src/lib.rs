//! Sluice's server: the REST API (`api`) and the web UI (`ui`), served by the scheduler
//! process on a small tokio runtime of its own, so a slow client never touches the
//! scheduling loop. The UI renders the API's views (`api::views`); the API does not know the
//! UI exists: this module puts the two side by side behind one token check.

pub mod api;
pub mod standby;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Most connections served at once; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 256;
/// A client has this long to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request has this long to be answered (log reads, scans and the loop's answer included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection, however busy, is closed after this long (clients reconnect).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(600);
/// Largest request body (a trigger's conf, a backfill request).
pub const BODY_LIMIT: usize = 1 << 20;

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
        .layer(axum::middleware::from_fn(bounded))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api)
}

/// Every request within [`REQUEST_TIMEOUT`]; reads (which scan the store, synchronously) on
/// a thread the async workers hand over, so a slow scan never stalls other connections.
async fn bounded(request: Request, next: Next) -> Response {
    // A body announced larger than the limit is refused before any of it is read.
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > BODY_LIMIT as u64) {
        return api::error::ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} KiB", BODY_LIMIT >> 10),
        )
        .into_response();
    }
    let reading = request.method() == axum::http::Method::GET;
    let too_long = || {
        api::error::ApiError::unavailable(format!(
            "the request took longer than {} s",
            REQUEST_TIMEOUT.as_secs()
        ))
        .into_response()
    };
    if !reading {
        return tokio::time::timeout(REQUEST_TIMEOUT, next.run(request))
            .await
            .unwrap_or_else(|_| too_long());
    }
    // On the blocking pool: the async workers stay free, and the timeout here can fire
    // while the scan goes on (its answer is then dropped).
    let handle = tokio::runtime::Handle::current();
    let read = tokio::task::spawn_blocking(move || handle.block_on(next.run(request)));
    match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => api::error::ApiError::unavailable("the read failed").into_response(),
        Err(_) => too_long(),
    }
}

/// The server running in the background, until dropped (the listener closes, open
/// connections end): an HA instance serves another router once its term ends.
pub struct Server {
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds `address` (port 0 picks a free one) and serves the API and UI on a thread of its
/// own.
pub fn serve(address: SocketAddr, api: Api) -> std::io::Result<Server> {
    let log = Arc::clone(&api.log);
    serve_router(address, router(api), log)
}

/// Serves a router on a runtime and thread of its own until the returned server is dropped.
pub fn serve_router(
    address: SocketAddr,
    app: Router,
    log: api::LogSink,
) -> std::io::Result<Server> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-api")
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("sluice-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                tokio::select! {
                    _ = serve_connections(listener, app, log) => {}
                    _ = stopped => {}
                }
            });
            // Open connections end with the runtime.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
    Ok(Server {
        address: bound,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Accepts connections up to [`MAX_CONNECTIONS`] at once, each with a header-read timeout
/// and a lifetime; a connection over the cap is closed at once.
async fn serve_connections(listener: tokio::net::TcpListener, app: Router, log: api::LogSink) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                log(&format!("api: accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(permit);
        });
    }
}
