//! The store opens after a process was killed while sled wrote a snapshot.

use sluice::store::Store;

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
