//! On the main thread, `get_event_loop()` with no loop set creates and sets one
//! (asyncio's rule); elsewhere it is an error. This binary runs without the test
//! harness so that its code runs on the real main thread.

mod common;

fn main() {
    assert!(polyloop::is_main_thread());
    let first = polyloop::get_event_loop().expect("the main thread gets a loop made for it");
    let again = polyloop::get_event_loop().unwrap();
    assert_eq!(first, again, "and keeps it as its current loop");

    let other = std::thread::spawn(|| {
        assert!(!polyloop::is_main_thread());
        polyloop::get_event_loop().unwrap_err()
    })
    .join()
    .unwrap();
    assert!(other.is_no_current_loop());

    // block_on on the main thread uses that same loop.
    let used = polyloop::block_on(async { polyloop::get_running_loop().unwrap() });
    assert_eq!(used, first);

    // After set_event_loop(None), the next get makes a new one.
    polyloop::set_event_loop(None).unwrap();
    let fresh = polyloop::get_event_loop().unwrap();
    assert_ne!(fresh, first);
    println!("policy_main_thread: ok");
}
