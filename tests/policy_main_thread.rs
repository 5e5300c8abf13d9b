//! On the main thread, `get_event_loop()` with no loop set creates and sets one, until
//! `set_event_loop` is called there (asyncio's rule); elsewhere it is an error. This binary runs without the test
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

    // After set_event_loop(None), as after any set_event_loop, the main thread gets no
    // loop made for it any more (asyncio's `_set_called`): the error names the thread.
    polyloop::set_event_loop(None).unwrap();
    let err = polyloop::get_event_loop().unwrap_err();
    assert!(err.is_no_current_loop(), "got {err:?}");
    assert_eq!(err, polyloop::Error::NoCurrentLoop { thread: "main".into() });
    assert!(err.to_string().contains("'main'"), "{err}");
    // Asked twice, still no loop: the error did not make one either.
    assert!(polyloop::get_event_loop().unwrap_err().is_no_current_loop());

    // block_on still works: it makes a loop (where asyncio would refuse) and sets it.
    let made = polyloop::block_on(async { polyloop::get_running_loop().unwrap() });
    assert_ne!(made, first);
    assert_eq!(polyloop::get_event_loop().unwrap(), made);

    // Setting a loop, then None again: still no implicit loop.
    let mine = polyloop::new_event_loop().unwrap();
    polyloop::set_event_loop(Some(mine.clone())).unwrap();
    assert_eq!(polyloop::get_event_loop().unwrap(), mine);
    polyloop::set_event_loop(None).unwrap();
    assert!(polyloop::get_event_loop().unwrap_err().is_no_current_loop());

    // A new default policy starts over: it has never been told a loop, so it makes one.
    polyloop::set_event_loop_policy(None);
    let fresh = polyloop::get_event_loop().expect("a fresh policy makes a loop again");
    assert_ne!(fresh, made);
    assert_ne!(fresh, mine);
    for lp in [first, made, mine, fresh] {
        let _ = polyloop::set_event_loop(None);
        lp.close().unwrap();
    }
    println!("policy_main_thread: ok");
}
