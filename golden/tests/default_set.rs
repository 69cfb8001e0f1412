//! Invariants of the golden set checked into `golden/data`, which the inference pod's
//! self-test and the operator's canary analysis both use. Fails if the data is missing.

use std::collections::BTreeMap;

use kube_ocr_golden::{GoldenSet, Task, default_set_dir};

#[test]
fn default_set_loads_and_keeps_its_invariants() {
    let dir = default_set_dir();
    // load() already checks ids, task/field agreement and that every file exists
    // inside the folder; failing here means the data is missing or broken.
    let set = GoldenSet::load(&dir).unwrap_or_else(|error| panic!("default golden set in {}: {error}", dir.display()));

    let lines = set.items.iter().filter(|item| item.task == Task::Line).count();
    let documents = set.items.iter().filter(|item| item.task == Task::Document).count();
    assert!(lines >= 60, "only {lines} LINE items");
    assert!(documents >= 10, "only {documents} DOCUMENT items");

    for item in &set.items {
        assert!(set.image_path(item).is_file(), "{}: {} missing", item.id, item.file.display());
    }

    let mut variants: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for item in &set.items {
        variants.entry(&item.group).or_default().push(&item.variant);
    }
    for (group, names) in &variants {
        if names.len() >= 2 {
            assert!(names.contains(&"clean"), "group {group} has variants {names:?} but no clean one");
        }
    }
}
