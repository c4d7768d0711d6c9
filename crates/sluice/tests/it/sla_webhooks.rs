//! SLA events through the real engine (scheduler mode, real processes) to a local webhook
//! receiver over HTTP: the warning and the breach (raised when the run fails, before its
//! deadline) are recorded, counted, reported and delivered; a receiver that first fails
//! gets the event again after a backoff; one that always fails is given up on after the
//! target's attempts, and the report says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::in_process;

use in_process::Scheduler;
use sluice_runtime::config::{Secret, Webhook};

/// One request as received.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the receiver answered to each request, in order.
type Seen = Arc<Mutex<Vec<(u16, Received)>>>;

/// A webhook receiver on 127.0.0.1 answering 500 to the first `failures` requests, then 200.
fn receiver(failures: usize) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut headers = Vec::new();
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(": ") {
                    headers.push((k.to_owned(), v.to_owned()));
                }
            }
            let length = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let mut seen = log.lock().unwrap();
            let status = if seen.len() < failures { 500 } else { 200 };
            seen.push((
                status,
                Received {
                    headers,
                    body: serde_json::from_slice(&body).unwrap_or_default(),
                },
            ));
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

/// A scheduler on one daily DAG without catchup: its one run (yesterday's interval, which
/// ended at midnight) warns at once (`warn_after: 1s`) and fails after two seconds, long
/// before its two-day deadline.
fn scheduler(name: &str, hook: Webhook) -> Scheduler {
    in_process::start(
        &format!("sla-{name}"),
        &[(
            "d.yaml",
            "dag: daily\nschedule: \"@daily\"\nstart: 2025-01-01T00:00:00Z\ncatchup: false\n\
             sla: { warn_after: 1s, deadline: 2d }\ntasks:\n  \
             work: { type: command, retries: 0, command: 'sleep 2; exit 1' }\n",
        )],
        move |config| {
            config.webhooks = vec![hook];
            config.webhook_backoff = Duration::from_millis(200);
            config.shutdown_grace = Duration::from_secs(1);
        },
    )
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_warning_and_an_early_breach_are_delivered_and_the_first_failure_is_retried() {
    let (url, seen) = receiver(1);
    let s = scheduler(
        "deliver",
        Webhook {
            name: "ops".into(),
            url,
            token: Some(Secret::new("hook-t0ken")),
            attempts: 4,
        },
    );
    wait_for("both events delivered", Duration::from_secs(60), || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(status, _)| *status == 200)
            .count()
            == 2
    });
    let seen = seen.lock().unwrap().clone();
    // The first request failed, its retry came after the backoff, then the breach.
    let types: Vec<(u16, &str)> = seen
        .iter()
        .map(|(status, r)| (*status, r.body["type"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        types,
        [(500, "sla_warn"), (200, "sla_warn"), (200, "sla_breach")]
    );
    let breach = &seen[2].1;
    assert_eq!(breach.body["dag_id"], "daily");
    assert_eq!(breach.body["run_state"], "failed");
    assert!(
        breach.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("failed") && r.contains("before its deadline")),
        "{}",
        breach.body
    );
    let run_id = breach.body["run_id"].as_str().unwrap().to_owned();
    assert!(run_id.starts_with("scheduled__"));
    assert_eq!(breach.header("authorization"), Some("Bearer hook-t0ken"));
    assert_eq!(
        breach.header("idempotency-key"),
        Some(format!("daily/{run_id}/breach").as_str())
    );
    assert_eq!(
        seen[0].1.header("idempotency-key"),
        seen[1].1.header("idempotency-key")
    );

    // Recorded with their deliveries, counted, and in the report.
    let from = chrono::Utc::now() - chrono::TimeDelta::days(3);
    let to = chrono::Utc::now();
    wait_for("deliveries recorded", Duration::from_secs(10), || {
        s.store
            .sla_events_between("daily", from, to)
            .unwrap()
            .iter()
            .all(|e| e.deliveries.iter().all(|d| d.delivered_at.is_some()))
    });
    let events = s.store.sla_events_between("daily", from, to).unwrap();
    let attempts: Vec<(&str, u32)> = events
        .iter()
        .map(|e| (e.kind.name(), e.deliveries[0].attempts))
        .collect();
    assert_eq!(attempts, [("breach", 1), ("warn", 2)]);
    assert_eq!(
        s.metrics.value(
            "sluice_sla_misses_total",
            &[("dag", "daily"), ("kind", "breach")]
        ),
        Some(1.0)
    );
    let report = sluice_store::reports::sla_report(&s.store, "daily", from, to).unwrap();
    assert_eq!((report.warnings, report.breaches), (1, 1));
    assert!(
        report
            .misses
            .iter()
            .all(|m| m.deliveries["ops"] == "delivered")
    );
    let run = s.store.runs_of("daily").next().unwrap().unwrap();
    assert!(run.sla.warned_at.is_some() && run.sla.breached_at.is_some());
}

#[test]
fn a_receiver_that_keeps_failing_is_given_up_on_after_its_attempts() {
    let (url, seen) = receiver(usize::MAX);
    let s = scheduler(
        "give-up",
        Webhook {
            name: "flaky".into(),
            url,
            token: None,
            attempts: 2,
        },
    );
    let from = chrono::Utc::now() - chrono::TimeDelta::days(3);
    let to = chrono::Utc::now();
    wait_for("both events given up", Duration::from_secs(60), || {
        let events = s.store.sla_events_between("daily", from, to).unwrap();
        events.len() == 2 && events.iter().all(|e| e.deliveries[0].gave_up)
    });
    // Two tries each, no more.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(seen.lock().unwrap().len(), 4);
    let report = sluice_store::reports::sla_report(&s.store, "daily", from, to).unwrap();
    assert!(
        report
            .misses
            .iter()
            .all(|m| m.deliveries["flaky"]
                == "failed: the receiver answered 500 Internal Server Error"),
        "{:?}",
        report.misses
    );
}
