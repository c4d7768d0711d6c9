//! `sluice scheduler` with `[ha]`: campaign as a standby, take over (restore the shipped
//! state, recover), serve as the active until stopped or deposed, then campaign again.
//! And `sluice ha status`. docs/ha.md says how it fits together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sluice_runtime::ha::ship::Parent;
use sluice_runtime::ha::target::Objects;
use sluice_runtime::ha::{HaSettings, Leadership, ShipConfig, Shipper, Term, restore};
use sluice_runtime::scheduler::EngineConfig;
use sluice_server::standby::{ActiveInstance, StandbyView};
use sluice_store::Store;

use super::runs::{Signals, serve_term};
use super::{Cli, CliError, OutputFormat, Streams};

fn invalid(message: String, hint: &str) -> CliError {
    CliError::Invalid {
        message,
        hint: Some(hint.to_owned()),
    }
}

fn open_target(ha: &HaSettings) -> Result<Arc<dyn Objects>, CliError> {
    sluice_runtime::ha::target::open(&ha.ship_to, &ha.s3)
        .map(Arc::from)
        .map_err(|e| {
            invalid(
                format!("cannot open the shipping target {}: {e}", ha.ship_to),
                "check ha.ship_to (and the bucket's credentials); docs/ha.md",
            )
        })
}

/// The scheduler as one of a deployment's instances: standby until it holds the lease.
pub(super) fn supervise(
    cli: &Cli,
    ha: &HaSettings,
    config: EngineConfig,
    signals: &Signals,
) -> Result<i32, CliError> {
    let objects = open_target(ha)?;
    let api = cli.settings.listen.map(|l| format!("http://{l}"));
    let elector = ha
        .elector(api)
        .map_err(|e| invalid(e.to_string(), "check ha.etcd; docs/ha.md"))?;
    let view = Arc::new(std::sync::Mutex::new(StandbyView {
        deployment: ha.deployment.clone(),
        instance: ha.instance.clone(),
        ..StandbyView::default()
    }));
    let mut standby_server = serve_standby(cli, ha, &view)?;
    loop {
        tracing::info!(
            "ha: instance `{}` of `{}` is standby, campaigning (lease {} s)",
            ha.instance,
            ha.deployment,
            ha.lease_ttl.as_secs()
        );
        let mut last_seen = String::new();
        let term = elector.campaign(&signals.stop, &mut |seen| {
            if let Ok(mut shown) = view.lock() {
                match &seen {
                    Ok(active) => {
                        // Our own key, not yet expired after a loss: no one to send callers to.
                        let active = active.as_ref().filter(|a| a.holder.instance != ha.instance);
                        shown.active = active.map(|a| ActiveInstance {
                            instance: a.holder.instance.clone(),
                            lease_revision: a.token,
                            api: a.holder.api.clone(),
                        });
                        shown.problem = None;
                    }
                    Err(e) => shown.problem = Some(format!("cannot reach etcd: {e}")),
                }
            }
            let now = match seen {
                Ok(Some(active)) => format!(
                    "active: `{}` (lease revision {})",
                    active.holder.instance, active.token
                ),
                Ok(None) => "no active instance".to_owned(),
                Err(e) => format!("cannot reach etcd: {e}"),
            };
            if now != last_seen {
                tracing::info!("ha: standby; {now}");
                last_seen = now;
            }
        });
        let Some(term) = term else {
            tracing::info!("ha: stopped while standby");
            return Ok(0);
        };
        drop(standby_server);
        let pause = match serve_as_active(cli, ha, &config, signals, objects.clone(), term)? {
            Served::Stopped => return Ok(0),
            Served::Deposed => false,
            // A standby campaigns every quarter of the TTL: let another win first.
            Served::GaveUp | Served::HandedOver => true,
        };
        standby_server = serve_standby(cli, ha, &view)?;
        if pause {
            wait_or_stop(ha.lease_ttl, signals);
        }
    }
}

/// While standby, the API's address answers with who is active (`sluice_server::standby`).
fn serve_standby(
    cli: &Cli,
    ha: &HaSettings,
    view: &Arc<std::sync::Mutex<StandbyView>>,
) -> Result<Option<sluice_server::Server>, CliError> {
    let Some(address) = cli.settings.listen else {
        return Ok(None);
    };
    let shown = view.clone();
    let standby = sluice_server::standby::Standby {
        access: sluice_server::api::auth::Access::of(&cli.settings),
        log: sluice_server::api::stderr_log(),
        view: Arc::new(move || {
            shown
                .lock()
                .map(|v| v.clone())
                .unwrap_or_else(|p| p.into_inner().clone())
        }),
    };
    // The previous term's server may still be closing its listener: retry briefly.
    let mut tries = 0;
    loop {
        match sluice_server::standby::serve(address, standby.clone()) {
            Ok(server) => {
                tracing::info!(
                    "ha: standby answers on http://{} (instance `{}`)",
                    server.address,
                    ha.instance
                );
                return Ok(Some(server));
            }
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!("ha: cannot listen on {address} yet: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                return Err(invalid(
                    format!("cannot listen on {address}: {e}"),
                    "set another address with --listen, SLUICE_LISTEN or `listen` in sluice.toml",
                ));
            }
        }
    }
}

/// Sleeps up to `limit`, ending early on SIGINT/SIGTERM.
fn wait_or_stop(limit: std::time::Duration, signals: &Signals) {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until && !signals.stop.load(Ordering::Acquire) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A takeover that could not complete: the lease goes back, and this instance campaigns
/// again after a pause (another may do better: its own target access, a later retry).
fn gave_up(term: Term, why: &dyn std::fmt::Display) -> Served {
    tracing::error!("ha: cannot take over: {why}; giving the lease back");
    term.resign();
    Served::GaveUp
}

enum Served {
    Stopped,
    Deposed,
    GaveUp,
    /// `ha step-down`: standby again, after giving the others a head start.
    HandedOver,
}

fn serve_as_active(
    cli: &Cli,
    ha: &HaSettings,
    config: &EngineConfig,
    signals: &Signals,
    objects: Arc<dyn Objects>,
    term: Term,
) -> Result<Served, CliError> {
    let token = term.token();
    let took_over = std::time::Instant::now();
    tracing::info!("ha: active (lease revision {token}); taking over the state");
    let parent = match take_over(cli.state(), objects.as_ref(), &ha.instance) {
        Ok(parent) => parent,
        Err(e) => return Ok(gave_up(term, &e)),
    };
    let restore_seconds = took_over.elapsed().as_secs_f64();
    let store = match Store::open(cli.state()) {
        Ok(store) => store,
        Err(e) => return Ok(gave_up(term, &e)),
    };
    let shipper = Shipper::start(
        store.clone(),
        objects,
        token,
        parent,
        ShipConfig {
            every: ha.ship_every,
            snapshot_every: ha.snapshot_every,
            keep_snapshots: ha.keep_snapshots,
            scratch: cli.state().join("ha-snapshot.partial"),
        },
        term.fence(),
    );
    let shipper = match shipper {
        Ok(shipper) => shipper,
        Err(e) => return Ok(gave_up(term, &format!("cannot ship the state: {e}"))),
    };
    tracing::info!("ha: state ready in {restore_seconds:.3} s; scheduling");
    let mut config = config.clone();
    config.leadership = Some(Leadership {
        fence: term.fence(),
        cuts: Some(shipper.handle()),
        shipping: Some(shipper.status_handle()),
        takeover: took_over.elapsed(),
    });
    let ended = serve_term(cli, store, config, signals);
    match ended {
        Ok(None) => {
            // A graceful stop: the last changes are shipped, then the lease is handed back so a
            // standby takes over at once.
            let status = shipper.finish();
            tracing::info!(
                "ha: shipped up to cut {} of generation {}; resigning",
                status.cut_shipped,
                status.generation
            );
            term.resign();
            if signals.hand_over.swap(false, Ordering::AcqRel)
                && !signals.stop.load(Ordering::Acquire)
            {
                if let Err(e) = set_aside(cli.state(), "handed-over") {
                    tracing::warn!("ha: {e}");
                }
                return Ok(Served::HandedOver);
            }
            Ok(Served::Stopped)
        }
        Ok(Some(deposed)) => {
            shipper.abandon();
            drop(term);
            if let Err(e) = set_aside(cli.state(), "deposed") {
                tracing::warn!("ha: {e}");
            }
            tracing::warn!("ha: {deposed}; this instance is standby again");
            if signals.stop.load(Ordering::Acquire) {
                return Ok(Served::Stopped);
            }
            Ok(Served::Deposed)
        }
        Err(e) => {
            // The state here may be what failed: a standby restores the shipped one.
            shipper.abandon();
            term.resign();
            Err(e)
        }
    }
}

/// Makes the state folder hold the deployment's newest shipped state, and says where the
/// new generation starts from. The first term of a deployment (nothing shipped yet) keeps
/// the local state as it is.
fn take_over(state: &Path, objects: &dyn Objects, instance: &str) -> Result<Parent, CliError> {
    let unusable = |e: &dyn std::fmt::Display| {
        invalid(
            format!("cannot restore the shipped state: {e}"),
            "`sluice ha status` shows what was shipped; docs/ha.md (failure cases)",
        )
    };
    // Restored beside the local database, which is set aside only once the restore is whole.
    let restoring = state.join("restoring");
    let _ = std::fs::remove_dir_all(&restoring);
    let restored = match restore::restore_latest(objects, &restoring) {
        Ok(Some(restored)) => restored,
        // Nothing shipped yet: the deployment's first term keeps the local state as it is.
        Ok(None) => {
            return Ok(Parent {
                from: None,
                instance: instance.to_owned(),
                at: chrono::Utc::now(),
            });
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&restoring);
            return Err(unusable(&e));
        }
    };
    set_aside(state, "replaced")?;
    let db = state.join("db");
    std::fs::rename(restoring.join("db"), &db).map_err(|source| CliError::Io {
        path: db.clone(),
        source,
    })?;
    let _ = std::fs::remove_dir_all(&restoring);
    if let Some(gap) = &restored.gap {
        tracing::warn!("ha: the shipped log has a gap: {gap}");
    }
    tracing::info!(
        "ha: restored generation {} up to cut {} ({} snapshot(s), {} segment(s), {} change(s))",
        restored.generation,
        restored.cut,
        restored.snapshots,
        restored.segments,
        restored.changes
    );
    Ok(Parent {
        from: Some((restored.generation, restored.cut)),
        instance: instance.to_owned(),
        at: chrono::Utc::now(),
    })
}

/// Set-aside databases kept per reason (the newest ones).
const KEEP_SET_ASIDE: usize = 3;

/// Moves the local database out of the way, as `db.<why>-<unix ms>`, for a post-mortem: a
/// deposed instance's state may hold changes its successor never saw, and a replaced one is
/// the last local copy. The newest three of each reason are kept.
fn set_aside(state: &Path, why: &str) -> Result<(), CliError> {
    let db = state.join("db");
    if !db.exists() {
        return Ok(());
    }
    let stamp = chrono::Utc::now().timestamp_millis();
    let aside: PathBuf = state.join(format!("db.{why}-{stamp:013}"));
    std::fs::rename(&db, &aside).map_err(|source| CliError::Io {
        path: db.clone(),
        source,
    })?;
    let prefix = format!("db.{why}-");
    let mut kept: Vec<PathBuf> = std::fs::read_dir(state)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    kept.sort();
    for old in kept.iter().rev().skip(KEEP_SET_ASIDE) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}

/// `sluice ha step-down`: inside the active scheduler (through its control socket).
pub(super) fn step_down(cli: &Cli, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let Some(remote) = streams.remote.clone() else {
        if let Some(scheduler) = super::client::Socket::connect(cli.state()) {
            let args = ["sluice".to_owned(), "ha".to_owned(), "step-down".to_owned()];
            return scheduler.forward(&args, streams);
        }
        return Err(invalid(
            format!("no active scheduler on {}", cli.state().display()),
            "run it on the active instance's host with its --state (or config); `sluice ha status` says which instance is active",
        ));
    };
    let Some(hand_over) = &remote.hand_over else {
        return Err(invalid(
            "this scheduler has no [ha] section: there is no standby to hand over to".into(),
            "stop it with SIGTERM instead",
        ));
    };
    hand_over.store(true, Ordering::Release);
    remote
        .sender
        .send(sluice_runtime::scheduler::Input::Shutdown)
        .map_err(|_| {
            invalid(
                "the scheduler is already stopping".into(),
                "see `sluice ha status`",
            )
        })?;
    streams.done(
        cli.output,
        "stepping down: no new attempts; running ones get the shutdown grace, then the last changes are shipped and the lease is released for a standby",
    )
}

/// `sluice ha status`: who is active, and what was shipped.
pub(super) fn status(cli: &Cli, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let ha = cli.settings.ha.as_ref().ok_or_else(|| {
        invalid(
            "no [ha] section in the configuration".into(),
            "docs/ha.md shows one; `sluice config check` says which file is read",
        )
    })?;
    let elector = ha
        .elector(None)
        .map_err(|e| invalid(e.to_string(), "check ha.etcd"))?;
    let active = elector
        .active()
        .map_err(|e| invalid(e.to_string(), "check ha.etcd and that etcd runs"))?;
    let objects = open_target(ha)?;
    let shipped = shipped_summary(objects.as_ref()).map_err(|e| {
        invalid(
            format!("cannot read {}: {e}", ha.ship_to),
            "check ha.ship_to",
        )
    })?;
    let report = serde_json::json!({
        "deployment": ha.deployment,
        "instance": ha.instance,
        "active": active,
        "ship_to": ha.ship_to.to_string(),
        "shipped": shipped,
    });
    match cli.output {
        OutputFormat::Json => streams.json(&report)?,
        OutputFormat::Table => {
            let out = &mut streams.out;
            writeln!(out, "deployment  {}", ha.deployment)?;
            match &active {
                Some(a) => writeln!(
                    out,
                    "active      {} (lease revision {}, since {}){}",
                    a.holder.instance,
                    a.token,
                    a.holder.since.format("%Y-%m-%d %H:%M:%S UTC"),
                    a.holder
                        .api
                        .as_ref()
                        .map(|api| format!(", API {api}"))
                        .unwrap_or_default()
                )?,
                None => writeln!(
                    out,
                    "active      none (a standby takes over within the lease)"
                )?,
            }
            writeln!(out, "ship to     {}", ha.ship_to)?;
            match &shipped {
                Some(s) => {
                    writeln!(
                        out,
                        "generation  {} (parent: {})",
                        s.generation,
                        s.parent
                            .map(|(g, c)| format!("generation {g} at cut {c}"))
                            .unwrap_or_else(|| "the first instance's own state".into())
                    )?;
                    writeln!(
                        out,
                        "shipped     up to cut {} in {} segment(s)",
                        s.last_cut, s.segments
                    )?;
                    match &s.snapshot {
                        Some(m) => writeln!(
                            out,
                            "snapshot    cut {}, {} records, {} bytes, taken {}",
                            m.cut,
                            m.records,
                            m.bytes,
                            m.taken_at.format("%Y-%m-%d %H:%M:%S UTC")
                        )?,
                        None => writeln!(out, "snapshot    none yet in this generation")?,
                    }
                }
                None => writeln!(out, "shipped     nothing yet")?,
            }
        }
    }
    Ok(0)
}

use std::io::Write as _;

#[derive(serde::Serialize)]
struct Shipped {
    generation: i64,
    parent: Option<(i64, u64)>,
    last_cut: u64,
    segments: usize,
    snapshot: Option<sluice_runtime::ha::ship::SnapshotManifest>,
}

fn shipped_summary(
    objects: &dyn Objects,
) -> Result<Option<Shipped>, sluice_runtime::ha::target::TargetError> {
    let Some(&generation) = restore::generations(objects)?.last() else {
        return Ok(None);
    };
    let parent = restore::parent(objects, generation)?;
    let segments = restore::segments(objects, generation)?;
    Ok(Some(Shipped {
        generation,
        parent: parent.and_then(|p| p.from),
        last_cut: segments.last().map_or(0, |(_, last)| *last),
        segments: segments.len(),
        snapshot: restore::snapshots(objects, generation)?.pop(),
    }))
}
