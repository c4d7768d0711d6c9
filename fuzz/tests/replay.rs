//! Every seed (`fuzz/corpus/<target>/`) and every input a fuzzer once failed on
//! (`fuzz/regressions/<target>/`) through its target's check, in a plain test: the fixed
//! bugs stay fixed without a fuzzing build.

use std::path::Path;

#[test]
fn seeds_and_past_failures_pass_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for (target, check) in sluice_fuzz::TARGETS {
        let mut seeds = 0;
        for folder in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a readable folder").path();
                let input = std::fs::read(&path).expect("a readable input");
                eprintln!("{target}: {}", path.display());
                check(&input);
                seeds += 1;
            }
        }
        assert!(seeds > 0, "no seeds for {target}");
        replayed += seeds;
    }
    eprintln!("{replayed} inputs replayed");
}
