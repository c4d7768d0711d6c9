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
    loop {
        tracing::info!(
            "ha: instance `{}` of `{}` is standby, campaigning (lease {} s)",
            ha.instance,
            ha.deployment,
            ha.lease_ttl.as_secs()
        );
        let mut last_seen = String::new();
        let term = elector.campaign(&signals.stop, &mut |seen| {
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
        match serve_as_active(cli, ha, &config, signals, objects.clone(), term)? {
            Served::Stopped => return Ok(0),
            Served::Deposed => continue,
        }
    }
}

enum Served {
    Stopped,
    Deposed,
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
    let parent = take_over(cli.state(), objects.as_ref(), &ha.instance)?;
    let restore_seconds = took_over.elapsed().as_secs_f64();
    let store = Store::open(cli.state())?;
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
            instance: ha.instance.clone(),
        },
    )
    .map_err(|e| invalid(format!("cannot ship the state: {e}"), "check ha.ship_to"))?;
    tracing::info!("ha: state ready in {restore_seconds:.3} s; scheduling");
    let mut config = config.clone();
    config.leadership = Some(Leadership {
        fence: term.fence(),
        cuts: Some(shipper.handle()),
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
            Ok(Served::Stopped)
        }
        Ok(Some(deposed)) => {
            shipper.abandon();
            drop(term);
            set_aside(cli.state(), "deposed");
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
    let generations = restore::generations(objects).map_err(|e| unusable(&e))?;
    if generations.is_empty() {
        return Ok(Parent {
            from: None,
            instance: instance.to_owned(),
            at: chrono::Utc::now(),
        });
    }
    set_aside(state, "replaced");
    let restored = restore::restore_latest(objects, state)
        .map_err(|e| unusable(&e))?
        .ok_or_else(|| unusable(&"nothing was shipped"))?;
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

/// Moves the local database out of the way (kept once, for a post-mortem): a deposed
/// instance's state may hold changes its successor never saw.
fn set_aside(state: &Path, why: &str) {
    let db = state.join("db");
    if !db.exists() {
        return;
    }
    let aside: PathBuf = state.join(format!("db.{why}"));
    let _ = std::fs::remove_dir_all(&aside);
    if let Err(e) = std::fs::rename(&db, &aside) {
        tracing::warn!("ha: cannot set {} aside: {e}", db.display());
    }
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
    let folder = sluice_runtime::ha::ship::generation_folder(generation);
    let parent: Option<Parent> = objects
        .get(&format!("{folder}/parent.json"))?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let segments = restore::segments(objects, generation)?;
    Ok(Some(Shipped {
        generation,
        parent: parent.and_then(|p| p.from),
        last_cut: segments.last().map_or(0, |(_, last)| *last),
        segments: segments.len(),
        snapshot: restore::snapshots(objects, generation)?.pop(),
    }))
}
