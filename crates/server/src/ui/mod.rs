//! The web UI: server-rendered pages (minijinja templates and one stylesheet and script,
//! all embedded in the binary) over the same store the API reads. Pages only read; every
//! button calls the REST API from the browser with the token the user typed (kept in the
//! browser's local storage), so the UI can do nothing the API would refuse.
//!
//! Pages: DAG list (search, filters by tag, owner and status); a DAG's grid (runs × tasks
//! coloured by state, Airflow's grid view, paged), its graph and its backfills; its run list
//! (paged, by state); its interval calendar (each interval of a range by ledger status); its
//! definition (the file and the compiled tasks, per version); a run with its Gantt chart and
//! gate figures; a task instance with its attempts, rendered fields and a log that follows
//! while the attempt runs; SLA misses across DAGs.

mod code;
mod data_assets;
mod history;
mod pages;
mod sla;
mod svg;

use axum::Router;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::Environment;

use crate::api::Api;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("dags.html", include_str!("templates/dags.html")),
    ("dag.html", include_str!("templates/dag.html")),
    ("run.html", include_str!("templates/run.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("calendar.html", include_str!("templates/calendar.html")),
    ("task.html", include_str!("templates/task.html")),
    ("code.html", include_str!("templates/code.html")),
    ("sla.html", include_str!("templates/sla.html")),
    (
        "data_assets.html",
        include_str!("templates/data_assets.html"),
    ),
    ("data_asset.html", include_str!("templates/data_asset.html")),
    ("error.html", include_str!("templates/error.html")),
    ("signin.html", include_str!("templates/signin.html")),
];

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

fn environment() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_filter("second", second);
        for (name, source) in TEMPLATES {
            // The templates are part of the binary and checked by the UI tests.
            if let Err(e) = env.add_template(name, source) {
                eprintln!("ui: template {name}: {e}");
            }
        }
        env
    })
}

/// The `second` filter: an RFC 3339 instant (the API's views carry nanoseconds) as UTC to
/// the second, `2025-01-01 00:00:00Z`; anything else unchanged.
fn second(text: String) -> String {
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| history::second(t.with_timezone(&chrono::Utc)))
        .unwrap_or(text)
}

/// Renders a page; a template error is a 500 page that says which.
fn render(name: &str, context: minijinja::Value) -> Response {
    match environment()
        .get_template(name)
        .and_then(|t| t.render(context))
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Html(format!(
                "<h1>Page error</h1><pre>{}</pre>",
                escape(&e.to_string())
            )),
        )
            .into_response(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An error page with the status of the API's error.
fn error_page(error: crate::api::error::ApiError) -> Response {
    let status = error.status;
    let mut page = render(
        "error.html",
        minijinja::context! { title => "Not found", error => error.body.error, hint => error.body.hint },
    );
    *page.status_mut() = status;
    page
}

/// A page the guard refused for want of the token becomes a sign-in page (401 still), whose
/// token field saves the token and reloads; API calls keep their JSON refusal.
pub async fn sign_in_when_refused(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let page = request.method() == axum::http::Method::GET
        && (path == "/" || path.starts_with("/ui/"))
        && !path.starts_with("/ui/assets/");
    let response = next.run(request).await;
    if !page || response.status() != axum::http::StatusCode::UNAUTHORIZED {
        return response;
    }
    let mut sign_in = render("signin.html", minijinja::context! { title => "Sign in" });
    *sign_in.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
    sign_in
}

pub fn router() -> Router<Api> {
    Router::new()
        .route("/", get(pages::dags))
        .route("/ui/dags/{dag_id}", get(pages::dag))
        .route("/ui/dags/{dag_id}/runs", get(history::runs))
        .route("/ui/dags/{dag_id}/calendar", get(history::calendar))
        .route("/ui/dags/{dag_id}/code", get(code::code))
        .route("/ui/sla", get(sla::misses))
        .route("/ui/data-assets", get(data_assets::list))
        .route("/ui/data-assets/{asset}", get(data_assets::asset))
        .route("/ui/dags/{dag_id}/runs/{run_id}", get(pages::run))
        .route(
            "/ui/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
            get(pages::task),
        )
        .route(
            "/ui/assets/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route(
            "/ui/assets/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_show_to_the_second() {
        assert_eq!(
            super::second("2026-12-07T20:36:58.058003766Z".into()),
            "2026-12-07 20:36:58Z"
        );
        assert_eq!(super::second("—".into()), "—");
    }

    #[test]
    fn every_template_parses() {
        let mut env = minijinja::Environment::new();
        for (name, source) in super::TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
