use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + TimeDelta::minutes(minutes)
}

fn written(asset: &str, start: i64, seq: u64, dag: &str) -> MaterializationRecord {
    MaterializationRecord {
        asset: asset.into(),
        interval_start: at(start),
        interval_end: at(start + 15),
        seq,
        dag: dag.into(),
        run_id: format!("scheduled__{}", at(start).to_rfc3339()),
        task: "load".into(),
        try_number: 1,
        at: at(start + 20),
        dag_version: "v1".into(),
    }
}

fn temporary(name: &str) -> Result<Store> {
    let root = std::env::temp_dir().join(format!("sluice-assets-{name}-{}", std::process::id()));
    Store::temporary(&root)
}

#[test]
fn two_producers_share_one_history_and_the_newest_version_wins() -> Result<()> {
    let store = temporary("shared")?;
    assert_eq!(store.next_materialization_seq()?, 1);
    let mut writes = store.writes();
    writes.put_materialization(&written(
        "warehouse.agg_15m",
        0,
        1,
        "events_aggregation_15m",
    ));
    writes.put_materialization(&written(
        "warehouse.agg_15m",
        15,
        2,
        "events_aggregation_15m",
    ));
    // A backfill of another DAG rewrites the first window; a sibling asset is apart.
    writes.put_materialization(&written("warehouse.agg_15m", 0, 3, "historical_backfill"));
    writes.put_materialization(&written("warehouse.agg_15m_x", 0, 4, "other"));
    writes.set_next_materialization_seq(5);
    store.apply(writes)?;
    let latest = store.latest_materialization("warehouse.agg_15m", at(0))?;
    assert_eq!(
        latest.map(|m| (m.seq, m.dag)),
        Some((3, "historical_backfill".to_owned()))
    );
    assert_eq!(
        store.latest_materialization("warehouse.agg_15m", at(30))?,
        None
    );
    let history = store.materializations("warehouse.agg_15m", at(0), at(60), 10)?;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 3, 2], "by interval, then version");
    assert_eq!(store.next_materialization_seq()?, 5);
    Ok(())
}

#[test]
fn a_materialization_its_ledger_entry_and_the_stale_mark_commit_together() -> Result<()> {
    let store = temporary("together")?;
    let mut writes = store.writes();
    writes.put_ledger(
        "p",
        at(0),
        &crate::LedgerEntry {
            interval_end: at(15),
            run_id: "scheduled__x".into(),
            status: sluice_core::RunStatus::Success,
            successes: 1,
            updated_at: at(20),
        },
    );
    writes.set_asset_tracked_since("a", at(20));
    writes.put_materialization(&written("a", 0, 7, "p"));
    writes.set_next_materialization_seq(8);
    let mut stale = StaleRecord {
        dag: "c".into(),
        interval_start: at(0),
        interval_end: at(60),
        since: at(20),
        causes: Vec::new(),
        more_causes: 0,
        rerun: true,
        held: None,
    };
    for seq in 0..20 {
        stale.add_cause(StaleCause {
            asset: "a".into(),
            interval_start: at(0),
            seq,
            dag: "p".into(),
            run_id: "r".into(),
            at: at(20),
        });
    }
    assert_eq!(
        (stale.causes.len(), stale.more_causes),
        (MAX_STALE_CAUSES, 4)
    );
    assert!(stale.describe().ends_with("4 more"), "{}", stale.describe());
    writes.put_stale(&stale);
    assert_eq!(
        store.asset_tracked_since("a")?,
        None,
        "nothing before the apply"
    );
    store.apply(writes)?;
    assert_eq!(store.stale_interval("c", at(0))?, Some(stale.clone()));
    assert!(store.ledger_entry("p", at(0))?.is_some());
    assert_eq!(store.asset_tracked_since("a")?, Some(at(20)));
    assert_eq!(store.stale_intervals(None, 10)?.len(), 1);
    assert_eq!(store.stale_intervals(Some("d"), 10)?.len(), 0);
    assert_eq!(store.stale_count(), 1);
    let mut writes = store.writes();
    writes.remove_stale("c", at(0));
    store.apply(writes)?;
    assert_eq!(store.stale_interval("c", at(0))?, None);
    assert!(store.latest_materialization("a", at(0))?.is_some());
    Ok(())
}

proptest! {
    /// Whatever order versions are written in, an interval's latest is its largest number
    /// and its neighbours' versions never mix in.
    #[test]
    fn the_latest_is_the_largest_version_of_that_interval(
        writes in proptest::collection::vec((0i64..4, 1u64..1_000_000), 1..40)
    ) {
        let store = temporary("prop").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut batch = store.writes();
        for (slot, seq) in &writes {
            batch.put_materialization(&written("a", slot * 15, *seq, "p"));
        }
        store.apply(batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for slot in 0..4 {
            let expected = writes.iter().filter(|(s, _)| *s == slot).map(|(_, q)| *q).max();
            let latest = store
                .latest_materialization("a", at(slot * 15))
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .map(|m| m.seq);
            prop_assert_eq!(latest, expected);
        }
    }
}
