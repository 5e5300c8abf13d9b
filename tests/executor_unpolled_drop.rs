//! A task dropped before it was ever polled leaves the executor's set of live tasks.

#[test]
fn task_dropped_before_first_poll_is_not_pending() {
    let lp = polyloop::EventLoop::new().unwrap();
    drop(lp.spawn(async {}));
    lp.run_until_complete(polyloop::yield_now()).unwrap();
    assert_eq!(lp.pending_tasks(), 0);
    lp.close().unwrap();
}

#[test]
fn close_drops_unpolled_and_idle_tasks() {
    let lp = polyloop::EventLoop::new().unwrap();
    lp.spawn(std::future::pending::<()>()).detach();
    lp.run_until_complete(polyloop::yield_now()).unwrap();
    lp.spawn(std::future::pending::<()>()).detach();
    assert_eq!(lp.pending_tasks(), 2);
    lp.close().unwrap();
    assert_eq!(lp.pending_tasks(), 0);
}
