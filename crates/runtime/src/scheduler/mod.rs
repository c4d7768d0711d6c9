//! The tokio shell around the pure core: the event loop, timers, DAG reloads, dispatch to
//! executors, persistence with group commit, crash recovery, backfills and operator commands.
//!
//! One loop thread owns all scheduling state. Each iteration drains the inbox (executor
//! reports, operator commands), creates due runs, lets the core move task instances, grants
//! slots, writes every change to sled, flushes once, and only then starts the attempts it
//! decided on. With nothing to do it sleeps until the next timer (a retry, an interval
//! boundary, a DAG reload) or the next input: no polling of task instances.

mod assets;
mod attempts;
pub mod backfill;
mod backfill_task;
pub mod control;
mod dispatch;
mod engine;
mod gates;
mod inputs;
mod late_data;
mod observe;
mod persist;
mod recovery;
mod registry;
mod retention;
mod run_book;
mod scheduled;
mod sla;
mod stale;

pub use backfill::{BackfillAction, BackfillProgress};

/// The default cap on the intervals of one backfill: about three years of 15-minute
/// intervals (`scheduler.max_backfill_intervals` changes it).
pub const MAX_BACKFILL_INTERVALS: usize = 100_000;
pub use control::{Control, ControlError};
pub use engine::{Engine, EngineConfig, EngineError, Mode, Stats};

use std::sync::mpsc;

use crate::executor::{AttemptId, Report, ReportSink};
use crate::gate::kafka::{GateView, ViewSink};

/// What the loop receives.
#[derive(Debug)]
pub enum Input {
    Report {
        attempt: AttemptId,
        report: Report,
        /// When the executor said it: an attempt's end time is this, not the moment the
        /// loop got to the report.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Stop dispatching, let running attempts finish within the grace period, then exit.
    Shutdown,
    /// An operator command from another process (through the control socket).
    Control {
        command: Control,
        reply: std::sync::mpsc::Sender<Reply>,
    },
    /// Start or resume a backfill from another process.
    Backfill {
        dag: String,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        reprocess: sluice_store::Reprocess,
        max_active_runs: Option<usize>,
        reply: std::sync::mpsc::Sender<Reply>,
    },
    /// Write a backup of the state between two iterations (a consistent moment).
    Backup {
        to: std::path::PathBuf,
        reply: std::sync::mpsc::Sender<Reply>,
    },
    /// Is the loop alive and taking work? (`/readyz`) Answered with an error while shutting
    /// down.
    Ping {
        reply: std::sync::mpsc::Sender<Reply>,
    },
    /// What the gate monitor saw of a watched topic and group, or why it saw nothing.
    GateView(GateView),
}

/// The loop's inbox as executors and the gate monitor see it: what they send becomes an
/// [`Input`] here, so neither names the loop's message type.
pub(crate) struct Inbox(pub(crate) mpsc::Sender<Input>);

impl ReportSink for Inbox {
    fn report(&self, attempt: AttemptId, report: Report) {
        // The loop is gone only during shutdown (see `ReportSink::report`).
        let at = chrono::Utc::now();
        let _ = self.0.send(Input::Report {
            attempt,
            report,
            at,
        });
    }
}

impl ViewSink for Inbox {
    fn view(&self, view: GateView) -> bool {
        self.0.send(Input::GateView(view)).is_ok()
    }
}

/// The answer to a command: what was done, or why not and what to do.
pub type Reply = Result<String, (String, Option<String>)>;
