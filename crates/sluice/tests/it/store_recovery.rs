//! The store opens after a process was killed while sled wrote a snapshot, and reads back
//! what it wrote.

use sluice_store::Store;

#[test]
fn a_half_written_snapshot_is_set_aside_and_the_store_opens()
-> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-snapshot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    {
        let store = Store::open(&root)?;
        store.flush()?;
    }
    // What a SIGKILL during snapshot generation leaves: an incomplete `.generating` file
    // with the highest LSN, which sled 0.34 would read and call corruption.
    std::fs::write(
        root.join("db").join("snap.7FFFFFFFFFFFFFFF.generating"),
        b"partial",
    )?;
    let reopened = Store::open(&root)?;
    assert!(reopened.check()?.is_empty());
    assert!(
        root.join("db/partial-snapshots/snap.7FFFFFFFFFFFFFFF.generating")
            .exists()
    );
    drop(reopened);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// A run of an older DAG version is reopened after a restart from the stored version (the
/// API reads it too): every DAG we ship must read back equal, whatever its task types.
#[test]
fn every_shipped_dag_reads_back_from_the_store_unchanged() -> Result<(), Box<dyn std::error::Error>>
{
    let root = std::env::temp_dir().join(format!("sluice-versions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let store = Store::open(&root)?;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let set = sluice_model::spec::load::load_paths(&[repo.join("dags"), repo.join("examples")])
        .map_err(|(path, e)| format!("{}: {e}", path.display()))?;
    assert!(set.failures.is_empty(), "shipped DAGs must be valid");
    let kinds: std::collections::BTreeSet<String> = set
        .dags
        .iter()
        .flat_map(|d| d.dag.tasks.values())
        .map(|t| {
            serde_json::to_value(&t.kind)
                .map(|v| v["type"].to_string())
                .unwrap_or_default()
        })
        .collect();
    assert!(kinds.len() >= 5, "every task type is covered: {kinds:?}");
    for loaded in &set.dags {
        store.put_version(&loaded.dag, "v1")?;
        let back = store.version(&loaded.dag.dag, "v1")?;
        assert_eq!(
            back.as_ref(),
            Some(&loaded.dag),
            "{}",
            loaded.path.display()
        );
    }
    drop(store);
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
