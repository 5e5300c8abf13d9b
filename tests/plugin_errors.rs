//! Every error of the plug-in registry, with its message: an unknown name, a name
//! registered twice, and names that are not valid.

mod common;

use polyloop::Error;
use polyloop_debug as _;
use polyloop_global as _;
use polyloop_threadpool as _;

// Two plug-ins that picked the same name, as two crates might.
mod first {
    polyloop::register_policy! {
        name: "twin",
        description: "the first of two plug-ins named twin",
        create: || std::sync::Arc::new(polyloop::DefaultEventLoopPolicy::new()),
    }
}

mod second {
    polyloop::register_policy! {
        name: "twin",
        description: "the second of two plug-ins named twin",
        create: || std::sync::Arc::new(polyloop::DefaultEventLoopPolicy::new()),
    }
}

#[test]
fn an_unknown_name_lists_every_registered_one_and_the_linking_rule() {
    for err in [
        polyloop::plugin::find("fibers").unwrap_err(),
        polyloop::plugin::install("fibers").unwrap_err(),
    ] {
        assert!(err.is_unknown_policy());
        assert_eq!(
            err,
            Error::UnknownPolicy {
                name: "fibers".into(),
                available: ["debug", "default", "global", "threadpool", "twin"]
                    .map(String::from)
                    .to_vec(),
            }
        );
        assert_eq!(
            err.to_string(),
            "no event loop policy is registered as \"fibers\"; registered: debug, default, \
             global, threadpool, twin. A plug-in crate is only found when the binary links it: \
             name it in code, e.g. `use polyloop_threadpool as _;`"
        );
    }
}

#[test]
fn a_name_registered_twice_names_both_origins_at_install_time() {
    // Both stay listed; only choosing the name fails.
    let twins = polyloop::plugin::plugins().into_iter().filter(|p| p.name == "twin").count();
    assert_eq!(twins, 2);
    for err in [
        polyloop::plugin::find("twin").unwrap_err(),
        polyloop::plugin::install("twin").unwrap_err(),
    ] {
        assert_eq!(
            err,
            Error::DuplicatePolicy {
                name: "twin".into(),
                origins: vec!["plugin_errors::first".into(), "plugin_errors::second".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            "event loop policy \"twin\" is registered more than once, by plugin_errors::first \
             and plugin_errors::second; give each plug-in its own name"
        );
    }
    // A failed install leaves the process-wide policy alone (no test here installs one).
    assert_eq!(polyloop::get_event_loop_policy().name(), "default");
    // The other names are unaffected.
    assert_eq!(polyloop::plugin::find("global").unwrap().name, "global");
}

#[test]
fn invalid_names_are_refused_by_find_and_install() {
    for name in ["", "Threadpool", "THREADPOOL", "thread pool", " global", "global\n", "dé", "a/b"]
    {
        for err in [
            polyloop::plugin::find(name).unwrap_err(),
            polyloop::plugin::install(name).unwrap_err(),
        ] {
            assert_eq!(err, Error::InvalidPolicyName { name: name.into() });
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid event loop policy name {name:?}: a name is non-empty and uses only \
                     a-z, 0-9, '-', '_' and '.'"
                )
            );
        }
    }
}

#[test]
fn valid_names_use_lowercase_digits_and_separators() {
    use polyloop::plugin::is_valid_policy_name;
    for ok in ["default", "threadpool", "my-pool_2.0", "x"] {
        assert!(is_valid_policy_name(ok), "{ok}");
    }
    for bad in ["", "Default", "my pool", "pool!", "ü"] {
        assert!(!is_valid_policy_name(bad), "{bad}");
    }
}
