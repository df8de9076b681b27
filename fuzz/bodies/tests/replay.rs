//! Replays the committed fuzz corpus (`fuzz/corpus/NAME/*`) through the target bodies on
//! stable: every seed and every input that once found a bug runs in the normal test suite.
//! Also checks that targets, corpus directories and `fuzz/fuzz_targets/*.rs` agree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn names_in(dir: &Path, strip: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|n| n.strip_suffix(strip).map(str::to_string))
        .collect()
}

#[test]
fn targets_corpora_and_harnesses_agree() {
    let table: BTreeSet<String> = anode_fuzz::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(names_in(&fuzz_dir().join("fuzz_targets"), ".rs"), table);
    assert_eq!(names_in(&fuzz_dir().join("corpus"), ""), table);
    for (name, _) in anode_fuzz::TARGETS {
        let harness = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .expect("harness");
        assert!(
            harness.contains(&format!("anode_fuzz::{name}(data)")),
            "fuzz_targets/{name}.rs must call anode_fuzz::{name}"
        );
    }
}

#[test]
fn corpus_replays_without_findings() {
    let mut total = 0;
    for (name, body) in anode_fuzz::TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: no corpus in {}", dir.display());
        for f in &files {
            let data = std::fs::read(f).expect("corpus file");
            let run = std::panic::catch_unwind(|| body(&data));
            assert!(run.is_ok(), "{name}: {} is a finding", f.display());
        }
        total += files.len();
    }
    eprintln!("replayed {total} corpus inputs");
}
