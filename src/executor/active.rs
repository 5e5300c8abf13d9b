//! The set of an executor's live tasks, so that dropping the executor can cancel them
//! and debug reports can say where they were spawned.
//!
//! Every spawn and every finished task passes through here, so the set is built to
//! touch as little shared memory as it can. Keys live in pages of 64. A spawn takes
//! the set's lock and the lowest free key at or after a cursor, which keeps keys in
//! about spawn order: a burst of spawns writes its slots one after the other. A task
//! that finishes takes no lock: it sets its key's bit in its page's `done` word, one
//! atomic operation on a line that spawns do not write. Keys of finished tasks are
//! reclaimed by a later spawn, under the lock, a whole word at a time, when the cursor
//! reaches a page with no free key.
//!
//! Who releases the set's reference to a task is decided by that same bit: the task
//! finishing, or `take_all` (which marks every live key done at once). After
//! `take_all` the pages are retired, never reused: a task that it took may still set
//! its bit there later, and must not find a new task under its key.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::future::Future;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll, RawWakerVTable, Waker};

use super::report::{Finished, Incident, drop_catching};
use super::state::State;
use super::sync::{AtomicU64, Ordering};

/// Keys per page.
const BITS: usize = u64::BITS as usize;

/// A task in the active set: the parts of its waker.
///
/// The set owns one reference to each of its tasks (taken by [`State::register`]):
/// without it, a detached task that nothing can wake would be freed by async-task
/// without its future being dropped, and the set would point at freed memory. Whoever
/// wins the task's bit in its page's `done` word releases that reference:
/// `Tracked::drop`, or `Slab::take_all` for `cancel_all`.
#[derive(Clone, Copy)]
pub(crate) struct TaskRef(NonNull<()>, &'static RawWakerVTable);

// SAFETY: a `TaskRef` stands for a waker (which is `Send + Sync`), and is only turned
// into one by whoever owns the set's reference, while the task is alive.
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
    /// The caller must own the set's reference: it won the task's `done` bit (see the
    /// type's docs), and calls this once.
    pub(crate) unsafe fn into_waker(self) -> Waker {
        // SAFETY: the parts come from a waker of this task, and the reference they
        // stand for is handed over to the new waker (see above).
        unsafe { Waker::new(self.0.as_ptr(), self.1) }
    }
}

/// A word alone on its cache line(s), so that finishing tasks do not write the line
/// that spawns read and write.
#[repr(align(128))]
struct Padded(AtomicU64);

/// 64 keys of the set.
///
/// `done` is shared; everything else is only touched under the set's lock, except the
/// task slots, which a finishing task also reads (see `Place::leave`).
#[repr(align(128))]
struct Page {
    /// A bit per key whose task has left the set (set without the lock).
    done: Padded,
    /// A bit per key handed out and not reclaimed yet (under the lock).
    live: UnsafeCell<u64>,
    /// A bit per key whose task is a `!Send` one (under the lock).
    home: UnsafeCell<u64>,
    /// The number of where each key's task was spawned (see `Kinds`; under the lock).
    kinds: UnsafeCell<[u32; BITS]>,
    /// Each key's task, written under the lock before its `live` bit is set.
    tasks: [UnsafeCell<MaybeUninit<TaskRef>>; BITS],
}

// SAFETY: `done` is atomic; the other fields are only reached under the set's lock,
// except `tasks`, whose slot a finishing task reads while its key is live and not
// done, when no spawn can write it (see `Place::leave`).
unsafe impl Sync for Page {}
// SAFETY: as above; a page holds `TaskRef`s, which are `Send`.
unsafe impl Send for Page {}

impl Page {
    fn new() -> Box<Page> {
        Box::new(Page {
            done: Padded(AtomicU64::new(0)),
            live: UnsafeCell::new(0),
            home: UnsafeCell::new(0),
            kinds: UnsafeCell::new([0; BITS]),
            tasks: std::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
        })
    }

    /// The live keys whose task has not left the set, and the page's `done` word.
    ///
    /// # Safety
    ///
    /// Under the set's lock.
    unsafe fn present(&self) -> u64 {
        // SAFETY: under the lock (forwarded).
        let live = unsafe { *self.live.get() };
        live & !self.done.0.load(Ordering::Acquire)
    }

    /// The task under `bit`.
    ///
    /// # Safety
    ///
    /// The key is live: its slot was written.
    unsafe fn task(&self, bit: usize) -> TaskRef {
        // SAFETY: a live key's slot was written under the lock before the key was
        // handed out, and is only rewritten after the key was reclaimed (forwarded).
        unsafe { (*self.tasks[bit].get()).assume_init() }
    }
}

/// Frees the keys of `page` whose task left the set; gives how many. `live` is the
/// page's `live` word, reached under the set's lock.
fn reclaim(page: &Page, live: &mut u64) -> usize {
    if page.done.0.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    // Acquire: the tasks' reads of their slots come before the writes of new tasks.
    // (`done` only has bits of live keys: see `Place::leave`.)
    let done = page.done.0.swap(0, Ordering::Acquire);
    *live &= !done;
    done.count_ones() as usize
}

/// Where a task sits in the set: its page's address, with the key's bit in the low
/// six bits (pages are aligned to 128 bytes).
#[derive(Clone, Copy)]
pub(crate) struct Place(usize);

impl Place {
    fn new(page: &Page, bit: usize) -> Place {
        debug_assert!(bit < BITS);
        Place(ptr::from_ref(page) as usize | bit)
    }

    /// Marks the task gone from the set, and gives it if the set's reference is the
    /// caller's to release (else `take_all` took it).
    ///
    /// # Safety
    ///
    /// The page is alive (the set is), and the task at this place calls this once, as
    /// it is dropped.
    unsafe fn leave(self) -> Option<TaskRef> {
        let bit = self.0 % BITS;
        // SAFETY: the page is alive (forwarded).
        let page = unsafe { &*((self.0 - bit) as *const Page) };
        // Read before `done` is set: after that, a spawn may reclaim the key and write
        // a new task into the slot.
        // SAFETY: the key is this task's: live, and not reclaimed before its bit is set.
        let task = unsafe { page.task(bit) };
        // AcqRel: the read above comes before a reclaim's write; a reclaim or
        // `take_all` that set the bit first is seen.
        let before = page.done.0.fetch_or(1 << bit, Ordering::AcqRel);
        (before & (1 << bit) == 0).then_some(task)
    }
}

/// The places where tasks were spawned, numbered: a program has few, so a key keeps a
/// number.
#[derive(Default)]
struct Kinds {
    list: Vec<&'static Location<'static>>,
    numbers: HashMap<usize, u32>,
    /// The location numbered last, and its number: spawns in a loop all have one.
    /// `0` (no location) at first.
    last: usize,
    last_number: u32,
}

impl Kinds {
    /// The number of a location, numbering it if it is new.
    #[inline]
    fn number(&mut self, loc: &'static Location<'static>) -> u32 {
        let key = ptr::from_ref(loc) as usize;
        if key == self.last {
            return self.last_number;
        }
        self.number_slow(key, loc)
    }

    /// `number` for a location other than the last one.
    #[cold]
    fn number_slow(&mut self, key: usize, loc: &'static Location<'static>) -> u32 {
        let list = &mut self.list;
        let n = *self.numbers.entry(key).or_insert_with(|| {
            list.push(loc);
            u32::try_from(list.len() - 1).expect("fewer than 2^32 spawn locations")
        });
        (self.last, self.last_number) = (key, n);
        n
    }

    #[inline]
    fn get(&self, n: u32) -> &'static Location<'static> {
        self.list[n as usize]
    }
}

/// The live tasks of an executor, by key (`page * 64 + bit`). Keys of finished tasks
/// are reused.
#[derive(Default)]
// Boxed: a page keeps its address when the list grows, since tasks point at it.
#[allow(clippy::vec_box)]
pub(crate) struct Slab {
    pages: Vec<Box<Page>>,
    /// Pages given up by `take_all`, kept until the set is dropped: tasks that it took
    /// may still mark themselves done there.
    retired: Vec<Box<Page>>,
    /// The page where the search for a free key starts.
    cursor: usize,
    /// How many keys are live (handed out and not reclaimed).
    live: usize,
    /// What the pages' kind numbers stand for.
    kinds: Kinds,
}

impl Slab {
    /// How many tasks are live.
    pub(crate) fn len(&self) -> usize {
        // SAFETY: `&self` is reached under the lock.
        self.pages.iter().map(|p| unsafe { p.present() }.count_ones() as usize).sum()
    }

    /// The key for the next task: the lowest free key at or after the cursor, after
    /// reclaiming the keys of finished tasks in a page with none free. Past the last
    /// page, every page is reclaimed; then the search starts over from the first page
    /// if at least half of the keys are free (so that the sweep and the scan are paid
    /// for by the keys they find), and the set grows by an eighth otherwise (so that
    /// sweeps stay rare while it grows, and it stays under about 2.25 times its peak).
    fn vacant(&mut self) -> usize {
        loop {
            while let Some(page) = self.pages.get(self.cursor) {
                // SAFETY: `&mut self` is reached under the lock.
                let live = unsafe { &mut *page.live.get() };
                if *live == u64::MAX {
                    self.live -= reclaim(page, live);
                }
                if *live != u64::MAX {
                    return self.cursor * BITS + (!*live).trailing_zeros() as usize;
                }
                self.cursor += 1;
            }
            for page in &self.pages {
                // SAFETY: under the lock.
                self.live -= reclaim(page, unsafe { &mut *page.live.get() });
            }
            let capacity = self.pages.len() * BITS;
            if capacity > 0 && self.live * 2 <= capacity {
                self.cursor = 0;
            } else {
                let more = (self.pages.len() / 8).max(1);
                self.pages.extend(std::iter::repeat_with(Page::new).take(more));
            }
        }
    }

    /// Adds a task under `key`, a key given by `vacant` since the last insert.
    #[inline]
    fn insert(
        &mut self,
        key: usize,
        task: TaskRef,
        loc: &'static Location<'static>,
        home: bool,
    ) -> Place {
        let kind = self.kinds.number(loc);
        let (page, bit) = (&self.pages[key / BITS], key % BITS);
        // SAFETY: under the lock (`&mut self`); the key is free, so no finishing task
        // reads its slot.
        unsafe {
            (*page.tasks[bit].get()).write(task);
            (*page.kinds.get())[bit] = kind;
            let home_bits = &mut *page.home.get();
            *home_bits = (*home_bits & !(1 << bit)) | (u64::from(home) << bit);
            *page.live.get() |= 1 << bit;
        }
        self.live += 1;
        Place::new(page, bit)
    }

    /// The live tasks that have not left the set, by page and bit.
    fn present(&self) -> impl Iterator<Item = (&Page, usize)> + '_ {
        self.pages.iter().flat_map(|page| {
            // SAFETY: `&self` is reached under the lock.
            let bits = unsafe { page.present() };
            (0..BITS).filter(move |b| bits & (1 << b) != 0).map(move |b| (&**page, b))
        })
    }

    /// Where each live task was spawned.
    pub(crate) fn locations(&self) -> Vec<&'static Location<'static>> {
        self.present()
            // SAFETY: under the lock.
            .map(|(page, bit)| self.kinds.get(unsafe { (*page.kinds.get())[bit] }))
            .collect()
    }

    /// A waker of each live `!Send` task; the set keeps its own references.
    ///
    /// Only on the home thread: a `!Send` task's future is only dropped there (see
    /// `home.rs`), so none of these tasks can leave the set, and release the set's
    /// reference, while its waker is cloned.
    pub(crate) fn home_wakers(&self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for (page, bit) in self.present() {
            // SAFETY: under the lock.
            if unsafe { *page.home.get() } & (1 << bit) == 0 {
                continue;
            }
            // SAFETY: the key is live. The task is alive: the set's reference is only
            // released as the task's future is dropped, which happens on this thread
            // (see above); the clone is a reference of its own, and the set's is not
            // released (`ManuallyDrop`).
            let set_ref = ManuallyDrop::new(unsafe { page.task(bit).into_waker() });
            wakers.push(Waker::clone(&set_ref));
        }
        wakers
    }

    /// Empties the set and gives a waker of each task it held, which owns the set's
    /// reference. Its pages are retired: tasks that finish later find their bit set
    /// and release nothing.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for page in &self.pages {
            // SAFETY: under the lock.
            let live = unsafe { *page.live.get() };
            // Every live key at once: the bits that were clear are ours.
            let ours = live & !page.done.0.fetch_or(live, Ordering::AcqRel);
            for bit in (0..BITS).filter(|b| ours & (1 << b) != 0) {
                // SAFETY: the key is live, and winning its bit made the set's reference
                // ours: the task is alive until it is released.
                wakers.push(unsafe { page.task(bit).into_waker() });
            }
        }
        self.retired.append(&mut self.pages);
        self.cursor = 0;
        self.live = 0;
        wakers
    }
}

impl State {
    /// Creates a task with `make` and adds it to the set of live tasks. `make` wraps the
    /// task's future with the [`Registration`] it is given, so that the task leaves
    /// the set when its future is dropped, whether it was ever polled or not; the task's
    /// metadata must be a clone of this `Arc` (see [`Registration`]).
    /// `home` says that the task is a `!Send` one, bound to the home thread.
    pub(crate) fn register<T>(
        &self,
        loc: &'static Location<'static>,
        home: bool,
        make: impl FnOnce(Registration) -> (super::state::Runnable, T),
    ) -> (super::state::Runnable, T) {
        let mut active = self.active();
        let key = active.vacant();
        let page = &active.pages[key / BITS];
        let registration = Registration { state: self, place: Place::new(page, key % BITS), loc };
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
/// It points at the state without counting: every task's metadata is an `Arc<State>`,
/// and async-task drops that only after the future (see `Tracked::drop`).
pub(crate) struct Registration {
    state: *const State,
    place: Place,
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
        // SAFETY: the task's metadata keeps the state alive until after its
        // future is dropped (see `Registration`).
        let state = unsafe { &*r.state };
        // SAFETY: the set lives as long as the state (above); this task leaves it once,
        // here, as its future is dropped.
        if let Some(task) = unsafe { r.place.leave() } {
            // SAFETY: winning the task's bit made the set's reference ours to release.
            // The task outlives it: its future is being dropped by whoever holds the
            // task (its runnable, or async-task itself).
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

    /// A stand-in task: a waker whose data is `id` and whose vtable does nothing.
    fn task_with(id: usize) -> TaskRef {
        use std::task::RawWaker;
        const VTABLE: RawWakerVTable =
            RawWakerVTable::new(|p| RawWaker::new(p, &VTABLE), |_| {}, |_| {}, |_| {});
        // SAFETY: the vtable never reads the data pointer.
        let waker = unsafe { Waker::new(ptr::without_provenance::<()>(id + 1), &VTABLE) };
        TaskRef::new(&waker)
    }

    /// Spawns a stand-in task: its key and its place.
    #[track_caller]
    fn spawn(slab: &mut Slab) -> (usize, Place) {
        let key = slab.vacant();
        (key, slab.insert(key, task_with(key), Location::caller(), false))
    }

    /// The task at `place` finishes: whether it released the set's reference.
    fn finish(place: Place) -> bool {
        // SAFETY: the slab is alive, and each test finishes a place once.
        unsafe { place.leave() }.is_some()
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
        let mut spawned: Vec<(usize, Place)> = (0..1000).map(|_| spawn(&mut slab)).collect();
        let keys: Vec<usize> = spawned.iter().map(|t| t.0).collect();
        assert_eq!(keys, (0..1000).collect::<Vec<_>>());
        let capacity = slab.pages.len() * BITS;
        for round in 0..5 {
            // Finish them in a scrambled order.
            for i in 0..1000 {
                assert!(finish(spawned[(i * 7919 + round) % 1000].1));
            }
            assert_eq!(slab.len(), 0);
            spawned = (0..1000).map(|_| spawn(&mut slab)).collect();
            let keys: Vec<usize> = spawned.iter().map(|t| t.0).collect();
            // The free keys of the last page, its reclaimed ones, then from the start.
            assert!(descents(&keys) <= 2, "round {round}: {keys:?}");
            let keys = sorted(keys);
            keys.windows(2).for_each(|w| assert!(w[0] < w[1], "a key given twice"));
            assert!(keys.iter().all(|&k| k < capacity), "round {round}: the set grew");
        }
    }

    #[test]
    fn a_mostly_full_set_grows_instead_of_scanning_and_stays_under_about_twice_its_peak() {
        let mut slab = Slab::default();
        let long_lived: Vec<(usize, Place)> = (0..640).map(|_| spawn(&mut slab)).collect();
        // Every tenth task finishes: 90 % stay.
        for t in long_lived.iter().step_by(10) {
            assert!(finish(t.1));
        }
        // Full pages are reclaimed as the cursor passes; with most keys taken, the set
        // grows rather than scanning from the start.
        let new: Vec<usize> = (0..64).map(|_| spawn(&mut slab).0).collect();
        assert!(new.iter().all(|&k| k >= 576), "{new:?}");
        // Churn: one short task at a time keeps reusing keys.
        for _ in 0..10_000 {
            let (_, place) = spawn(&mut slab);
            assert!(finish(place));
        }
        assert!(
            slab.pages.len() * BITS <= 2 * slab.len() + 2 * BITS,
            "grew to {}",
            slab.pages.len()
        );
    }

    #[test]
    fn a_sparse_set_reuses_freed_keys_from_the_start() {
        let mut slab = Slab::default();
        let spawned: Vec<(usize, Place)> = (0..256).map(|_| spawn(&mut slab)).collect();
        for t in &spawned[..200] {
            assert!(finish(t.1));
        }
        let capacity = slab.pages.len();
        let reused: Vec<usize> = (0..200).map(|_| spawn(&mut slab).0).collect();
        assert!(descents(&reused) <= 1, "{reused:?}");
        assert_eq!(sorted(reused), (0..200).collect::<Vec<_>>());
        assert_eq!(slab.pages.len(), capacity, "no growth while keys are free");
        assert_eq!(slab.len(), 256);
    }

    #[test]
    fn each_task_keeps_its_own_parts_and_location() {
        let mut slab = Slab::default();
        let (here, there) = (Location::caller(), spawn_site());
        let mut spawned = Vec::new();
        for i in 0..300 {
            let key = slab.vacant();
            // Locations alternate, and come back after others.
            let loc = if i % 3 == 0 { there } else { here };
            let place = slab.insert(key, task_with(i), loc, false);
            spawned.push((i, place));
        }
        let mut locs = slab.locations();
        assert_eq!(locs.iter().filter(|l| std::ptr::eq(**l, there)).count(), 100);
        locs.retain(|l| std::ptr::eq(*l, here));
        assert_eq!(locs.len(), 200);
        for (i, place) in spawned {
            // SAFETY: each place leaves once.
            let got = unsafe { place.leave() }.expect("a live task");
            assert_eq!(got.0.as_ptr() as usize, i + 1, "task {i}: another task's parts");
        }
        assert_eq!(slab.kinds.list.len(), 2, "two locations, each numbered once");
    }

    #[track_caller]
    fn spawn_site() -> &'static Location<'static> {
        Location::caller()
    }

    #[test]
    fn take_all_empties_the_set_and_its_tasks_release_nothing_after() {
        let mut slab = Slab::default();
        let old: Vec<(usize, Place)> = (0..100).map(|_| spawn(&mut slab)).collect();
        assert!(finish(old[3].1));
        assert_eq!(slab.locations().len(), 99);
        assert_eq!(slab.take_all().len(), 99);
        assert_eq!(slab.len(), 0);
        let (new_key, new_place) = spawn(&mut slab);
        assert_eq!(new_key, 0);
        // A task that `take_all` took finishing late releases nothing, and leaves the
        // new task under the same key alone.
        assert!(!finish(old[0].1));
        assert_eq!(slab.len(), 1);
        assert!(finish(new_place));
        assert_eq!(slab.len(), 0);
    }

    #[test]
    fn home_tasks_are_told_apart() {
        let mut slab = Slab::default();
        for i in 0..10 {
            let key = slab.vacant();
            slab.insert(key, task_with(i), Location::caller(), i % 2 == 0);
        }
        assert_eq!(slab.home_wakers().len(), 5);
    }
}
