//! The set of an executor's live tasks, so that dropping the executor can cancel them
//! and debug reports can say where they were spawned.
//!
//! Every spawn and every finished task passes through here under one lock, so the set
//! is built to touch as little memory as it can. A task takes the lowest free key at
//! or after a cursor, which keeps keys in spawn order: a burst of spawns writes its
//! slots one after the other, however the tasks of earlier bursts finished. (A stack
//! of freed keys hands them out in the order the tasks finished, and after some rounds
//! of tasks finishing slightly out of order, each spawn wrote to a cold slot.) Freeing
//! a key clears one bit in a bitmap small enough to stay in cache and reads the slot
//! (in spawn order too, when tasks finish in about that order); a slot whose bit is
//! clear is stale and never read.

use std::collections::HashMap;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll, RawWakerVTable, Waker};

use super::report::{Finished, Incident, drop_catching};
use super::state::State;

/// Keys per word of the bitmap.
const BITS: usize = u64::BITS as usize;

/// A task in the active set: the parts of its waker.
///
/// The set owns one reference to each of its tasks (taken by [`State::register`]):
/// without it, a detached task that nothing can wake would be freed by async-task
/// without its future being dropped, and the set would point at freed memory. Whoever
/// takes a task out of the set, under its lock, releases that reference:
/// `Tracked::drop` after freeing the key, or `Slab::take_all` for `cancel_all`.
#[derive(Clone, Copy)]
pub(crate) struct TaskRef(NonNull<()>, &'static RawWakerVTable);

// SAFETY: a `TaskRef` stands for a waker (which is `Send + Sync`), and is only turned
// into one by whoever took the task out of the active set, while the task is alive.
unsafe impl Send for TaskRef {}

impl TaskRef {
    /// The parts of `waker`, a waker of an async-task task.
    pub(crate) fn new(waker: &Waker) -> TaskRef {
        // async-task wakers point at the task's header, never null.
        let data = NonNull::new(waker.data().cast_mut()).expect("a task waker has data");
        TaskRef(data, waker.vtable())
    }

    /// The waker that owns the set's reference to the task.
    ///
    /// # Safety
    ///
    /// The caller must own the set's reference: it took the task out of the set under
    /// its lock (see the type's docs), and calls this once.
    pub(crate) unsafe fn into_waker(self) -> Waker {
        // SAFETY: the parts come from a waker of this task, and the reference they
        // stand for is handed over to the new waker (see above).
        unsafe { Waker::new(self.0.as_ptr(), self.1) }
    }
}

/// What the set keeps of a live task: its address, the number of its kind, and
/// whether it is a `!Send` task (16 bytes, where its waker vtable and spawn location
/// would take 24).
#[derive(Clone, Copy)]
struct Slot {
    data: NonNull<()>,
    kind: u32,
    home: bool,
}

// SAFETY: a slot stands for a `TaskRef` (see its `Send` impl): its address is only
// made into a waker by whoever takes the task out of the set.
unsafe impl Send for Slot {}

/// The kinds of tasks, numbered: a kind is a waker vtable (one per task type) with a
/// spawn location. A program has few of each, so slots keep a kind's number.
#[derive(Default)]
struct Kinds {
    list: Vec<(&'static RawWakerVTable, &'static Location<'static>)>,
    numbers: HashMap<(usize, usize), u32>,
    /// The kind numbered last, and its number: spawns in a loop are all of one kind.
    /// `(0, 0)` (no kind) at first.
    last: (usize, usize),
    last_number: u32,
}

impl Kinds {
    /// The number of a kind, numbering it if it is new.
    #[inline]
    fn number(&mut self, vtable: &'static RawWakerVTable, loc: &'static Location<'static>) -> u32 {
        let key = (ptr::from_ref(vtable) as usize, ptr::from_ref(loc) as usize);
        if key == self.last {
            return self.last_number;
        }
        self.number_slow(key, vtable, loc)
    }

    /// `number` for a kind other than the last one.
    #[cold]
    fn number_slow(
        &mut self,
        key: (usize, usize),
        vtable: &'static RawWakerVTable,
        loc: &'static Location<'static>,
    ) -> u32 {
        let list = &mut self.list;
        let n = *self.numbers.entry(key).or_insert_with(|| {
            list.push((vtable, loc));
            u32::try_from(list.len() - 1).expect("fewer than 2^32 kinds of tasks")
        });
        (self.last, self.last_number) = (key, n);
        n
    }

    #[inline]
    fn get(&self, n: u32) -> (&'static RawWakerVTable, &'static Location<'static>) {
        self.list[n as usize]
    }
}

/// The live tasks of an executor, by key. Keys of finished tasks are reused.
#[derive(Default)]
pub(crate) struct Slab {
    /// The task of each key; only meaningful where the key's bit in `used` is set.
    slots: Vec<Option<Slot>>,
    /// One bit per key: set while the key belongs to a live task.
    used: Vec<u64>,
    /// The word of `used` where the search for a free key starts.
    cursor: usize,
    /// What the slots' kind numbers stand for.
    kinds: Kinds,
    len: usize,
    /// Bumped by `cancel_all`; a key is only freed by a task of the same epoch.
    epoch: u32,
}

impl Slab {
    /// How many tasks are live.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The key for the next task: the lowest free key at or after the cursor. Past
    /// the last key, the search starts over from the first one if at least half of
    /// the keys are free (so that the scan is paid for by the keys it finds), and the
    /// set grows otherwise (so that it stays under twice its peak size).
    fn vacant(&mut self) -> usize {
        loop {
            while let Some(&word) = self.used.get(self.cursor) {
                if word != u64::MAX {
                    return self.cursor * BITS + (!word).trailing_zeros() as usize;
                }
                self.cursor += 1;
            }
            let capacity = self.used.len() * BITS;
            if capacity > 0 && self.len * 2 <= capacity {
                // At most half of the keys are taken: the scan finds a free one.
                self.cursor = 0;
            } else {
                self.used.push(0);
                self.slots.resize(self.used.len() * BITS, None);
            }
        }
    }

    /// Adds a task under `key`, a key given by `vacant` since the last insert.
    #[inline]
    fn insert(&mut self, key: usize, task: TaskRef, loc: &'static Location<'static>, home: bool) {
        self.used[key / BITS] |= 1 << (key % BITS);
        let kind = self.kinds.number(task.1, loc);
        self.slots[key] = Some(Slot { data: task.0, kind, home });
        self.len += 1;
    }

    /// Frees `key` and gives its task, whose reference the caller must release. Does
    /// nothing and gives `None` if the set was emptied since the key was given (by
    /// `take_all`, which took the reference).
    #[inline]
    fn remove(&mut self, key: usize, epoch: u32) -> Option<TaskRef> {
        if epoch != self.epoch {
            return None;
        }
        let bit = 1 << (key % BITS);
        debug_assert!(self.used[key / BITS] & bit != 0, "a live key is freed once");
        self.used[key / BITS] &= !bit;
        self.len -= 1;
        self.slots[key].map(|slot| TaskRef(slot.data, self.kinds.get(slot.kind).0))
    }

    /// The live tasks, and where each was spawned.
    fn iter(&self) -> impl Iterator<Item = (TaskRef, &'static Location<'static>)> + '_ {
        self.used.iter().enumerate().flat_map(move |(i, &word)| {
            (0..BITS).filter(move |b| word & (1 << b) != 0).filter_map(move |b| {
                let slot = self.slots[i * BITS + b]?;
                let (vtable, loc) = self.kinds.get(slot.kind);
                Some((TaskRef(slot.data, vtable), loc))
            })
        })
    }

    /// Where each live task was spawned.
    pub(crate) fn locations(&self) -> Vec<&'static Location<'static>> {
        self.iter().map(|(_, loc)| loc).collect()
    }

    /// A waker of each live `!Send` task; the set keeps its own references.
    pub(crate) fn home_wakers(&self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for (i, &word) in self.used.iter().enumerate() {
            for b in (0..BITS).filter(|b| word & (1 << b) != 0) {
                let Some(slot) = self.slots[i * BITS + b].filter(|s| s.home) else { continue };
                let task = TaskRef(slot.data, self.kinds.get(slot.kind).0);
                // SAFETY: the task is in the set, whose reference keeps it alive while
                // the lock is held; the clone is a reference of its own, and the
                // set's is not released (`ManuallyDrop`).
                let set_ref = ManuallyDrop::new(unsafe { task.into_waker() });
                wakers.push(Waker::clone(&set_ref));
            }
        }
        wakers
    }

    /// Empties the set and gives a waker of each task it held, which owns the set's
    /// reference. Tasks that finish later find their epoch over and free nothing.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        let wakers = self
            .iter()
            // SAFETY: the task leaves the set here, under its lock, and the new epoch
            // keeps its `Tracked::drop` from releasing the reference again.
            .map(|(task, _)| unsafe { task.into_waker() })
            .collect();
        self.used.iter_mut().for_each(|w| *w = 0);
        self.cursor = 0;
        self.len = 0;
        self.epoch = self.epoch.wrapping_add(1);
        wakers
    }
}

impl State {
    /// Creates a task with `make` and adds it to the set of live tasks. `make` wraps the
    /// task's future with the [`Registration`] it is given, so that the task leaves
    /// the set when its future is dropped, whether it was ever polled or not; the task's
    /// schedule function must hold a clone of this `Arc` (see [`Registration`]).
    /// `home` says that the task is a `!Send` one, bound to the home thread.
    pub(crate) fn register<T>(
        &self,
        loc: &'static Location<'static>,
        home: bool,
        make: impl FnOnce(Registration) -> (async_task::Runnable, T),
    ) -> (async_task::Runnable, T) {
        let mut active = self.active();
        let key = active.vacant();
        let registration = Registration {
            state: self,
            key: u32::try_from(key).expect("fewer than 2^32 live tasks"),
            epoch: active.epoch,
            loc,
        };
        let (runnable, task) = make(registration);
        // The set owns this reference (see `TaskRef`): it is not dropped here.
        let waker = ManuallyDrop::new(runnable.waker());
        active.insert(key, TaskRef::new(&waker), loc, home);
        (runnable, task)
    }
}

/// A task's place in the active set, given to the future that [`State::register`]
/// creates.
///
/// It points at the state without counting: every task's schedule function holds an
/// `Arc<State>`, and async-task drops that only after the future (see `Tracked::drop`).
pub(crate) struct Registration {
    state: *const State,
    key: u32,
    epoch: u32,
    /// Where the task was spawned, for reports.
    loc: &'static Location<'static>,
}

// SAFETY: the state is `Sync`, and only reached through `&` while it is alive.
unsafe impl Send for Registration {}

impl Registration {
    /// Wraps the task's future so that dropping it frees this place.
    pub(crate) fn wrap<F: Future>(self, future: F) -> Tracked<F> {
        Tracked { future: ManuallyDrop::new(future), registration: self }
    }
}

/// A task's future that leaves the active set when dropped, polled or not, and whose
/// drop cannot abort the process (see `report.rs`).
pub(crate) struct Tracked<F> {
    future: ManuallyDrop<F>,
    registration: Registration,
}

impl<F: Future> Future for Tracked<F> {
    type Output = Finished<F::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `Tracked`,
        // and `Drop` below drops it in place.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let future = unsafe { Pin::new_unchecked(&mut *this.future) };
        // A panic becomes the task's output: resumed by whoever awaits the task, and
        // reported if nobody does (see `Finished`).
        let out = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(out)) => Ok(out),
            Ok(Poll::Pending) => return Poll::Pending,
            Err(panic) => Err(panic),
        };
        let r = &this.registration;
        // What the task wakes as it finishes (whoever awaits it) waits its turn.
        super::state::task_finishing(r.state);
        Poll::Ready(Finished::new(out, r.state, r.loc))
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        let r = &self.registration;
        // SAFETY: the task's schedule function keeps the state alive until after its
        // future is dropped (see `Registration`).
        let state = unsafe { &*r.state };
        let owned = state.active().remove(r.key as usize, r.epoch);
        if let Some(task) = owned {
            // SAFETY: `remove` took the task out of the set under its lock, so its
            // reference is ours to release. The task outlives it: its future is being
            // dropped by whoever holds the task (its runnable, or async-task itself).
            drop(unsafe { task.into_waker() });
        }
        // async-task drops the future under a guard that aborts the process if the
        // drop panics: drop it here first, catching the panic, and report it.
        // SAFETY: the future is dropped once, here, in place (it may be pinned).
        if let Err(panic) = unsafe { drop_catching(&mut self.future) } {
            state.report(Incident::DropPanicked {
                spawned_at: r.loc,
                output: false,
                payload: &*panic,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in task: a waker with data and a vtable that does nothing.
    fn task() -> TaskRef {
        use std::task::RawWaker;
        const VTABLE: RawWakerVTable =
            RawWakerVTable::new(|p| RawWaker::new(p, &VTABLE), |_| {}, |_| {}, |_| {});
        // SAFETY: the vtable never reads the data pointer.
        let waker = unsafe { Waker::new(NonNull::<u64>::dangling().as_ptr().cast(), &VTABLE) };
        TaskRef::new(&waker)
    }

    #[track_caller]
    fn spawn(slab: &mut Slab) -> usize {
        let key = slab.vacant();
        slab.insert(key, task(), Location::caller(), false);
        key
    }

    /// Another kind of task: another vtable.
    fn other_task() -> TaskRef {
        use std::task::RawWaker;
        const OTHER: RawWakerVTable =
            RawWakerVTable::new(|p| RawWaker::new(p, &OTHER), |_| {}, |_| {}, |_| {});
        // SAFETY: the vtable never reads the data pointer.
        let waker = unsafe { Waker::new(NonNull::<u32>::dangling().as_ptr().cast(), &OTHER) };
        TaskRef::new(&waker)
    }

    /// How many times a sequence of keys goes down: 0 is spawn order, 1 is spawn
    /// order with one wrap-around to the first free key.
    fn descents(keys: &[usize]) -> usize {
        keys.windows(2).filter(|w| w[1] < w[0]).count()
    }

    fn sorted(mut keys: Vec<usize>) -> Vec<usize> {
        keys.sort_unstable();
        keys
    }

    #[test]
    fn keys_follow_spawn_order_whatever_order_tasks_finished_in() {
        let mut slab = Slab::default();
        let mut keys: Vec<usize> = (0..1000).map(|_| spawn(&mut slab)).collect();
        assert_eq!(keys, (0..1000).collect::<Vec<_>>());
        let capacity = slab.slots.len();
        for round in 0..5 {
            // Finish them in a scrambled order.
            for i in 0..1000 {
                let key = keys[(i * 7919 + round) % 1000];
                assert!(slab.remove(key, slab.epoch).is_some());
            }
            assert_eq!(slab.len(), 0);
            let again: Vec<usize> = (0..1000).map(|_| spawn(&mut slab)).collect();
            assert!(descents(&again) <= 1, "round {round}: {again:?}");
            keys = again.clone();
            let again = sorted(again);
            again.windows(2).for_each(|w| assert!(w[0] < w[1], "a key given twice"));
            assert!(again.iter().all(|&k| k < capacity), "round {round}: the set grew");
        }
    }

    #[test]
    fn a_mostly_full_set_grows_instead_of_scanning_and_stays_under_twice_its_peak() {
        let mut slab = Slab::default();
        let long_lived: Vec<usize> = (0..640).map(|_| spawn(&mut slab)).collect();
        // Free every tenth key: 90 % stay taken.
        for key in long_lived.iter().step_by(10) {
            slab.remove(*key, slab.epoch);
        }
        // The free keys of the cursor's word are used, then the set grows: no scan
        // from the start while most keys are taken.
        let new: Vec<usize> = (0..64).map(|_| spawn(&mut slab)).collect();
        assert!(new.iter().all(|&k| k >= 576), "{new:?}");
        assert_eq!(descents(&new), 0, "{new:?}");
        // Churn: one short task at a time keeps reusing a key.
        for _ in 0..10_000 {
            let k = spawn(&mut slab);
            slab.remove(k, slab.epoch);
        }
        assert!(slab.slots.len() <= 2 * slab.len() + BITS, "grew to {}", slab.slots.len());
    }

    #[test]
    fn a_sparse_set_reuses_freed_keys_from_the_start() {
        let mut slab = Slab::default();
        let keys: Vec<usize> = (0..256).map(|_| spawn(&mut slab)).collect();
        for key in &keys[..200] {
            slab.remove(*key, slab.epoch);
        }
        let capacity = slab.slots.len();
        let reused: Vec<usize> = (0..200).map(|_| spawn(&mut slab)).collect();
        assert!(descents(&reused) <= 1, "{reused:?}");
        assert_eq!(sorted(reused), (0..200).collect::<Vec<_>>());
        assert_eq!(slab.slots.len(), capacity, "no growth while keys are free");
        assert_eq!(slab.len(), 256);
    }

    #[test]
    fn each_task_keeps_its_own_vtable_and_location() {
        let mut slab = Slab::default();
        let (a, b) = (task(), other_task());
        let (here, there) = (Location::caller(), spawn_site());
        let mut keys = Vec::new();
        for i in 0..300 {
            let key = slab.vacant();
            // Kinds alternate, and come back after others.
            let (t, loc) = if i % 3 == 0 { (b, there) } else { (a, here) };
            slab.insert(key, t, loc, false);
            keys.push((key, t, loc));
        }
        let mut locs = slab.locations();
        assert_eq!(locs.iter().filter(|l| std::ptr::eq(**l, there)).count(), 100);
        locs.retain(|l| std::ptr::eq(*l, here));
        assert_eq!(locs.len(), 200);
        for (key, t, _) in keys {
            let got = slab.remove(key, slab.epoch).expect("a live key");
            assert!(std::ptr::eq(got.1, t.1) && got.0 == t.0, "key {key}: another task's parts");
        }
        assert_eq!(slab.kinds.list.len(), 2, "two kinds, each numbered once");
    }

    #[track_caller]
    fn spawn_site() -> &'static Location<'static> {
        Location::caller()
    }

    #[test]
    fn take_all_empties_the_set_and_old_keys_free_nothing_after() {
        let mut slab = Slab::default();
        let old_epoch = slab.epoch;
        let keys: Vec<usize> = (0..100).map(|_| spawn(&mut slab)).collect();
        slab.remove(keys[3], old_epoch);
        assert_eq!(slab.locations().len(), 99);
        assert_eq!(slab.take_all().len(), 99);
        assert_eq!(slab.len(), 0);
        let new_key = spawn(&mut slab);
        assert_eq!(new_key, 0);
        // A task of the old epoch finishing late leaves the new task alone.
        assert!(slab.remove(keys[0], old_epoch).is_none());
        assert_eq!(slab.len(), 1);
        assert!(slab.remove(new_key, slab.epoch).is_some());
    }
}
