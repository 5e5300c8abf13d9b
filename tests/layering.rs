//! The crate's modules depend on each other in one direction only:
//! macros -> plugin -> policy -> event loop -> executor, with the settings read from the
//! environment (`src/settings.rs`) below the event loop. A lower module that names a
//! higher one (in code, not in a doc comment) fails this test.

use std::path::{Path, PathBuf};

/// What the modules above each layer offer, as code names them.
const PLUGIN: &[&str] = &["crate::plugin", "crate::__private", "crate::register_policy!"];
const POLICY: &[&str] = &[
    "crate::policy",
    "crate::block_on",
    "crate::get_event_loop",
    "crate::set_event_loop",
    "crate::new_event_loop",
    "crate::get_child_watcher",
    "crate::set_child_watcher",
    "crate::EventLoopPolicy",
    "crate::DefaultEventLoopPolicy",
    "crate::is_main_thread",
];
const EVENT_LOOP: &[&str] = &[
    "crate::event_loop",
    "crate::EventLoop",
    "crate::get_running_loop",
    "crate::spawn",
    "crate::try_spawn",
    "crate::run_with",
];

fn sources(rel: &str) -> Vec<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if path.is_file() {
        return vec![path];
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    out.sort();
    out
}

/// Every line of code (doc and other comments left out) in `rel` that names one of
/// `forbidden`, as "file:line: text".
fn upward_references(rel: &str, forbidden: &[&[&str]]) -> Vec<String> {
    let mut found = Vec::new();
    for file in sources(rel) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            // A grouped import names its items after the braces.
            let grouped = code.contains("use crate::{");
            for name in forbidden.iter().flat_map(|layer| layer.iter()) {
                let bare = name.trim_start_matches("crate::");
                let hit = code.contains(name)
                    || (grouped && code.split(['{', ',', '}', ' ']).any(|w| w == bare));
                if hit {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn settings_name_nothing_above_them() {
    let found = upward_references("src/settings.rs", &[PLUGIN, POLICY, EVENT_LOOP]);
    assert!(found.is_empty(), "the settings module reaches up:\n{}", found.join("\n"));
}

#[test]
fn the_event_loop_names_no_policy_and_no_plug_in() {
    let found = upward_references("src/event_loop", &[PLUGIN, POLICY]);
    assert!(found.is_empty(), "the event loop reaches up:\n{}", found.join("\n"));
}

#[test]
fn the_executor_names_no_loop_no_policy_and_no_plug_in() {
    let found = upward_references("src/executor", &[PLUGIN, POLICY, EVENT_LOOP]);
    assert!(found.is_empty(), "the executor reaches up:\n{}", found.join("\n"));
}

#[test]
fn the_policy_names_no_plug_in() {
    let found = upward_references("src/policy.rs", &[PLUGIN]);
    assert!(found.is_empty(), "the policy module reaches up:\n{}", found.join("\n"));
}
