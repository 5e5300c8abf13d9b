//! Compile-time checks of the auto traits users rely on.

mod common;

use polyloop::{EventLoop, Executor, Handle, LocalExecutor, Task, TimerHandle};

fn is_send<T: Send>() {}
fn is_sync<T: Sync>() {}
fn is_unpin<T: Unpin>() {}

#[test]
fn loops_executors_and_tasks_are_send_and_sync() {
    is_send::<EventLoop>();
    is_sync::<EventLoop>();
    is_send::<polyloop::WeakEventLoop>();
    is_sync::<polyloop::WeakEventLoop>();
    is_send::<Executor<'static>>();
    is_sync::<Executor<'static>>();
    is_send::<Task<u32>>();
    is_sync::<Task<u32>>();
    is_unpin::<Task<u32>>();
    is_send::<Handle>();
    is_sync::<Handle>();
    is_send::<TimerHandle>();
    is_send::<polyloop::Error>();
    is_sync::<polyloop::Error>();
    is_send::<std::sync::Arc<dyn polyloop::EventLoopPolicy>>();
}

#[test]
fn process_handles_are_send_sync_and_unpin() {
    use polyloop::process::{
        Child, ChildStderr, ChildStdin, ChildStdout, Command, PidFd, SpawnError,
    };
    is_send::<Command>();
    is_send::<Child>();
    is_sync::<Child>();
    is_unpin::<Child>();
    is_send::<ChildStdin>();
    is_send::<ChildStdout>();
    is_send::<ChildStderr>();
    is_sync::<ChildStdout>();
    is_unpin::<ChildStdin>();
    is_unpin::<ChildStdout>();
    is_unpin::<ChildStderr>();
    is_send::<PidFd>();
    is_sync::<PidFd>();
    is_send::<SpawnError>();
    is_sync::<SpawnError>();
}

/// Compiles only if `T` is not `Send` (with `T: Send` both impls apply and the call is
/// ambiguous).
trait AmbiguousIfSend<A> {
    fn check() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

/// Compiles only if `T` is not `Sync`.
trait AmbiguousIfSync<A> {
    fn check() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}

#[test]
fn local_executor_is_neither_send_nor_sync() {
    <LocalExecutor<'static> as AmbiguousIfSend<_>>::check();
    <LocalExecutor<'static> as AmbiguousIfSync<_>>::check();
}
