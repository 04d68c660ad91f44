//! Quiescent-state-based reclamation (QSBR).
//!
//! Workers read the lock-free tables without taking locks or announcing each read. The control
//! thread, the only writer, unpublishes memory (a tbl8 group, a table slot) with an atomic store
//! and must not reuse it while a worker may still hold a reference obtained before that store.
//! QSBR proves that no worker does: every worker reports a *quiescent state* once per poll loop,
//! a point at which it holds no reference into any table. Memory unpublished before a worker's
//! report is unreachable to that worker afterwards.
//!
//! The protocol, with one global counter (the token) and one cache-line-padded slot per reader:
//!
//! 1. The writer unpublishes memory, then calls [`Qsbr::retire_token`], which bumps the global
//!    token and returns the new value `t`. It keeps the memory in a [`Retired`] queue under `t`.
//! 2. Each online reader's [`QsbrReader::quiescent`] copies the global token into its slot.
//! 3. [`Qsbr::is_safe`]`(t)` is true once every online reader's slot holds `t` or a later token: each
//!    of them has passed a quiescent point after the memory was unpublished. An offline reader
//!    ([`QsbrReader::offline`]) holds no references by contract and never delays reuse.
//!
//! Readers never wait and never write shared state other than their own slot; the writer never
//! waits either: it polls [`Retired::drain_safe`] when it needs memory back.

use std::cell::Cell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Largest number of reader slots a [`Qsbr`] may be built with. Workers are one per core; the
/// limit only keeps [`Qsbr::is_safe`] (a scan over all slots) bounded.
pub const READERS_MAX: usize = 1024;

/// Slot value of a reader that is offline or of a slot nobody registered. Tokens start above it.
const OFFLINE: u64 = 0;

/// The first token value. Every token a reader can report is at least this.
const TOKEN_FIRST: u64 = 1;

/// A grace-period token: memory retired under token `t` may be reused once [`Qsbr::is_safe`]`(t)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(u64);

impl Token {
    /// The counter value, for logs and metrics.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// Errors of [`Qsbr::register`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QsbrError {
    /// All reader slots are registered.
    #[error("all {readers_max} QSBR reader slots are registered")]
    ReadersExhausted {
        /// The number of slots the [`Qsbr`] was built with.
        readers_max: usize,
    },
}

/// Aligns its content to 128 bytes: two cache lines, because x86 prefetches lines in adjacent
/// pairs, so two slots on neighbouring lines would still bounce between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
struct CachePadded<T>(T);

/// One reader's slot. `reported` is written by the reader on every poll loop and read by the
/// writer; `claimed` is touched only on register and unregister.
#[derive(Debug, Default)]
struct Slot {
    /// The last token the reader reported, or [`OFFLINE`].
    reported: AtomicU64,
    /// Whether a [`QsbrReader`] owns this slot.
    claimed: AtomicBool,
}

/// The shared QSBR state: the global token and a fixed array of reader slots.
///
/// Built once at startup with the maximum number of readers and shared through an `Arc`.
#[derive(Debug)]
pub struct Qsbr {
    /// The global token, alone on its cache line: readers load it on every poll loop and only the
    /// writer stores to it, so it stays shared (not bouncing) between retirements.
    token: CachePadded<AtomicU64>,
    slots: Box<[CachePadded<Slot>]>,
}

impl Qsbr {
    /// A QSBR domain with room for `readers_max` registered readers.
    ///
    /// # Panics
    ///
    /// If `readers_max` is 0 or above [`READERS_MAX`]: the count is a startup constant, not input.
    pub fn new(readers_max: usize) -> Self {
        assert!(
            (1..=READERS_MAX).contains(&readers_max),
            "readers_max must be in 1..={READERS_MAX}, got {readers_max}"
        );
        Self {
            token: CachePadded(AtomicU64::new(TOKEN_FIRST)),
            slots: (0..readers_max).map(|_| CachePadded::default()).collect(),
        }
    }

    /// The number of reader slots.
    pub fn readers_max(&self) -> usize {
        self.slots.len()
    }

    /// The number of registered readers that are online now (a snapshot, for operators).
    pub fn readers_online(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.0.reported.load(Ordering::Relaxed) != OFFLINE)
            .count()
    }

    /// Registers a reader, online from the start. Call it on the worker thread before its first
    /// table read (or from the thread that spawns it; the reader is `Send`).
    ///
    /// # Errors
    ///
    /// [`QsbrError::ReadersExhausted`] when every slot is registered.
    pub fn register(self: &Arc<Self>) -> Result<QsbrReader, QsbrError> {
        for (index, slot) in self.slots.iter().enumerate() {
            // Acquire on success: the slot's previous owner released it (Release in `Drop`) after
            // its last store to `reported`, so our stores below are ordered after it.
            if slot
                .0
                .claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                let reader = QsbrReader {
                    qsbr: Arc::clone(self),
                    slot: index,
                    online: Cell::new(false),
                    not_sync: PhantomData,
                };
                reader.online();
                return Ok(reader);
            }
        }
        Err(QsbrError::ReadersExhausted {
            readers_max: self.slots.len(),
        })
    }

    /// Starts a grace period: call it after the stores that unpublish memory, and keep that memory
    /// until [`Qsbr::is_safe`] says so for the returned token.
    pub fn retire_token(&self) -> Token {
        // AcqRel. Release: the unpublishing stores before this bump happen-before whatever a reader
        // does after it loads this value or a later one (Acquire in `quiescent`), so a reader that
        // reports the new token no longer sees the unpublished memory. Acquire is not needed by the
        // protocol (there is one writer) and costs nothing on a read-modify-write.
        Token(self.token.0.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Whether every online reader has passed a quiescent point since `token` was handed out, so
    /// that the memory retired under it may be reused. Never blocks.
    pub fn is_safe(&self, token: Token) -> bool {
        self.horizon() >= token
    }

    /// The newest token that is safe now: the oldest token any online reader reported, or the
    /// largest token when no reader is online.
    fn horizon(&self) -> Token {
        // SeqCst fence, paired with the one in `QsbrReader::online`. The writer stored to the
        // tables (unpublishing) before this fence and loads the slots after it; a reader coming
        // online stores its slot before its fence and loads the tables after it. Of two SeqCst
        // fences one comes first, so either we see that reader's slot (and its token, older than
        // ours, keeps the memory) or the reader sees the unpublished tables. Without the fences
        // both sides could read the old values (store buffering) and the memory would be reused
        // under a reader that still reaches it.
        fence(Ordering::SeqCst);
        let mut horizon = u64::MAX;
        for slot in self.slots.iter() {
            // Acquire, paired with the Release store in `quiescent`/`offline`: every table read
            // the reader did before reporting happens-before the writer reuses the memory.
            let reported = slot.0.reported.load(Ordering::Acquire);
            if reported != OFFLINE {
                horizon = horizon.min(reported);
            }
        }
        Token(horizon)
    }

    fn slot(&self, index: usize) -> &Slot {
        &self.slots[index].0
    }
}

/// A registered reader: one per worker thread, which calls [`QsbrReader::quiescent`] once per poll
/// loop. `Send` (it can be handed to the worker) but not `Sync`: its slot has one writer. Dropping
/// it unregisters the slot.
#[derive(Debug)]
pub struct QsbrReader {
    qsbr: Arc<Qsbr>,
    slot: usize,
    /// Local copy of whether the slot is online; only this thread changes it.
    online: Cell<bool>,
    not_sync: PhantomData<Cell<()>>,
}

impl QsbrReader {
    /// Reports a quiescent state: the calling thread holds no reference into any table protected
    /// by this domain. One load of the shared token and one store to the reader's own line.
    /// Ignored while the reader is offline (use [`QsbrReader::online`] to come back).
    #[inline]
    pub fn quiescent(&self) {
        if !self.online.get() {
            return;
        }
        // Acquire, paired with the AcqRel bump in `retire_token`: the table reads after this point
        // see every unpublishing store made before the token we load.
        let token = self.qsbr.token.0.load(Ordering::Acquire);
        // Release: the table reads before this point happen-before the writer's reuse of memory it
        // retired under `token` (the writer loads the slot with Acquire).
        self.qsbr
            .slot(self.slot)
            .reported
            .store(token, Ordering::Release);
    }

    /// Takes the reader offline: the thread will not read the tables until [`QsbrReader::online`],
    /// and no grace period waits for it meanwhile. For a worker that parks or shuts down.
    pub fn offline(&self) {
        self.online.set(false);
        // Release: the table reads before going offline happen-before the writer's reuse of
        // memory (the writer loads OFFLINE with Acquire and then skips the slot).
        self.qsbr
            .slot(self.slot)
            .reported
            .store(OFFLINE, Ordering::Release);
    }

    /// Brings the reader back online; the thread may read the tables after this returns.
    pub fn online(&self) {
        let slot = self.qsbr.slot(self.slot);
        // The token loaded here may already be stale; that only makes the writer wait longer.
        let token = self.qsbr.token.0.load(Ordering::Acquire);
        slot.reported.store(token, Ordering::SeqCst);
        // SeqCst fence, paired with the one in `Qsbr::horizon`: our slot store is ordered before
        // every table read that follows. A writer that missed this store (saw OFFLINE and reused
        // memory) executed its fence first, so the table reads below see its unpublishing stores
        // and never reach the reused memory. See the comment in `horizon`.
        fence(Ordering::SeqCst);
        self.online.set(true);
    }

    /// Whether the reader is online.
    pub fn is_online(&self) -> bool {
        self.online.get()
    }

    /// The domain this reader belongs to.
    pub fn qsbr(&self) -> &Arc<Qsbr> {
        &self.qsbr
    }
}

impl Drop for QsbrReader {
    fn drop(&mut self) {
        self.offline();
        // Release: the OFFLINE store above is ordered before the slot becomes claimable again.
        self.qsbr
            .slot(self.slot)
            .claimed
            .store(false, Ordering::Release);
    }
}

/// A deferred-reuse queue for the writer: items (tbl8 group indexes, table slots) wait here under
/// the token of the grace period that must end before they are reused.
///
/// Push items in the order their tokens were obtained (a single writer does that naturally);
/// [`Retired::drain_safe`] stops at the first item that is not yet safe, so an item pushed out of
/// order is returned late, never early.
#[derive(Debug)]
pub struct Retired<T> {
    queue: VecDeque<(Token, T)>,
}

impl<T> Default for Retired<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Retired<T> {
    /// An empty queue that allocates on first push.
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
        }
    }

    /// An empty queue with room for `capacity` items, so that pushing up to that many never
    /// allocates (for tables whose memory is all allocated at startup).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            queue: VecDeque::with_capacity(capacity),
        }
    }

    /// Queues `item`, retired under `token` (from [`Qsbr::retire_token`], obtained after the item
    /// was unpublished).
    pub fn push(&mut self, token: Token, item: T) {
        self.queue.push_back((token, item));
    }

    /// Removes and returns, oldest first, the items whose grace period is over. The safe horizon
    /// is computed once, when this is called.
    pub fn drain_safe(&mut self, qsbr: &Qsbr) -> impl Iterator<Item = T> + '_ {
        let horizon = if self.queue.is_empty() {
            Token(OFFLINE)
        } else {
            qsbr.horizon()
        };
        std::iter::from_fn(move || {
            if self.queue.front()?.0 <= horizon {
                self.queue.pop_front().map(|(_, item)| item)
            } else {
                None
            }
        })
    }

    /// The number of items waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    #[test]
    fn no_readers_means_everything_is_safe() {
        let qsbr = Qsbr::new(4);
        let token = qsbr.retire_token();
        assert!(qsbr.is_safe(token));
    }

    #[test]
    fn a_reader_that_never_reports_blocks_reuse() {
        let qsbr = Arc::new(Qsbr::new(4));
        let reader = qsbr.register().unwrap();
        let token = qsbr.retire_token();
        assert!(!qsbr.is_safe(token));
        let mut retired = Retired::new();
        retired.push(token, 7u32);
        assert_eq!(retired.drain_safe(&qsbr).count(), 0);
        assert_eq!(retired.len(), 1);
        // Still stuck after more retirements.
        let later = qsbr.retire_token();
        retired.push(later, 8);
        assert_eq!(retired.drain_safe(&qsbr).count(), 0);
        reader.quiescent();
        assert!(qsbr.is_safe(token));
        assert!(qsbr.is_safe(later));
        assert_eq!(retired.drain_safe(&qsbr).collect::<Vec<_>>(), vec![7, 8]);
        assert!(retired.is_empty());
    }

    #[test]
    fn a_report_only_covers_tokens_handed_out_before_it() {
        let qsbr = Arc::new(Qsbr::new(4));
        let reader = qsbr.register().unwrap();
        let first = qsbr.retire_token();
        reader.quiescent();
        let second = qsbr.retire_token();
        assert!(qsbr.is_safe(first));
        assert!(!qsbr.is_safe(second));
        let mut retired = Retired::new();
        retired.push(first, 'a');
        retired.push(second, 'b');
        assert_eq!(retired.drain_safe(&qsbr).collect::<Vec<_>>(), vec!['a']);
        assert_eq!(retired.len(), 1);
    }

    #[test]
    fn every_online_reader_must_report() {
        let qsbr = Arc::new(Qsbr::new(4));
        let a = qsbr.register().unwrap();
        let b = qsbr.register().unwrap();
        let token = qsbr.retire_token();
        a.quiescent();
        assert!(!qsbr.is_safe(token));
        b.quiescent();
        assert!(qsbr.is_safe(token));
    }

    #[test]
    fn offline_readers_do_not_block_and_online_readers_start_fresh() {
        let qsbr = Arc::new(Qsbr::new(4));
        let reader = qsbr.register().unwrap();
        assert_eq!(qsbr.readers_online(), 1);
        reader.offline();
        assert!(!reader.is_online());
        assert_eq!(qsbr.readers_online(), 0);
        let token = qsbr.retire_token();
        assert!(qsbr.is_safe(token));
        // Quiescent while offline is ignored: it must not bring the reader back silently.
        reader.quiescent();
        assert_eq!(qsbr.readers_online(), 0);
        reader.online();
        // Coming online reports the current token: older retirements are not held up...
        assert!(qsbr.is_safe(token));
        // ...but newer ones are.
        let newer = qsbr.retire_token();
        assert!(!qsbr.is_safe(newer));
        reader.quiescent();
        assert!(qsbr.is_safe(newer));
    }

    #[test]
    fn register_is_bounded_and_drop_frees_the_slot() {
        let qsbr = Arc::new(Qsbr::new(2));
        let a = qsbr.register().unwrap();
        let b = qsbr.register().unwrap();
        assert_eq!(
            qsbr.register().unwrap_err(),
            QsbrError::ReadersExhausted { readers_max: 2 }
        );
        let token = qsbr.retire_token();
        assert!(!qsbr.is_safe(token));
        drop(a);
        b.quiescent();
        // The dropped reader no longer holds anything up.
        assert!(qsbr.is_safe(token));
        let c = qsbr.register().unwrap();
        assert!(c.is_online());
        assert_eq!(qsbr.readers_online(), 2);
    }

    #[test]
    #[should_panic(expected = "readers_max")]
    fn zero_readers_is_rejected() {
        let _ = Qsbr::new(0);
    }

    #[test]
    fn reader_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<QsbrReader>();
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Qsbr>();
    }

    /// Readers follow a published pointer (an index into `cells`) and check that the cell they
    /// reach was not recycled under them; the writer republishes, retires the old cell and reuses
    /// cells only when QSBR says so, poisoning a cell when it takes it back.
    #[test]
    fn stress_reuse_never_happens_under_a_reader() {
        // Enough cells that the writer rarely waits for all readers to be scheduled (the test must
        // stay quick on a small, busy machine), few enough that each is reused many times.
        const CELLS: usize = 64;
        const READERS: usize = 2;
        const UPDATES: usize = 10_000;
        const POISON: u64 = u64::MAX;

        let qsbr = Arc::new(Qsbr::new(READERS));
        // Each cell holds the generation it was published with; `current` holds the published cell.
        let cells: Arc<Vec<AtomicU64>> = Arc::new((0..CELLS).map(|_| AtomicU64::new(0)).collect());
        let current = Arc::new(AtomicUsize::new(0));
        let generation_seen = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));

        let readers: Vec<_> = (0..READERS)
            .map(|i| {
                let reader = qsbr.register().unwrap();
                let (cells, current, stop, seen) = (
                    Arc::clone(&cells),
                    Arc::clone(&current),
                    Arc::clone(&stop),
                    Arc::clone(&generation_seen),
                );
                thread::spawn(move || {
                    let mut loops = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..16 {
                            let cell = current.load(Ordering::Acquire);
                            let first = cells[cell].load(Ordering::Acquire);
                            std::hint::spin_loop();
                            let second = cells[cell].load(Ordering::Acquire);
                            assert_ne!(first, POISON, "reached a reclaimed cell");
                            assert_eq!(first, second, "cell reused while referenced");
                            seen.fetch_max(first, Ordering::Relaxed);
                        }
                        loops += 1;
                        if i == 0 && loops % 64 == 0 {
                            // One reader parks now and then: offline must not break anything.
                            reader.offline();
                            thread::yield_now();
                            reader.online();
                        } else {
                            reader.quiescent();
                        }
                    }
                    loops
                })
            })
            .collect();

        let mut free: Vec<usize> = (1..CELLS).collect();
        let mut retired: Retired<usize> = Retired::with_capacity(CELLS);
        let mut published = 0usize;
        let mut generation = 0u64;
        let mut reused = 0usize;
        while (generation as usize) < UPDATES {
            // Poison as soon as it is safe: the readers check they never see it.
            for cell in retired.drain_safe(&qsbr) {
                cells[cell].store(POISON, Ordering::Relaxed);
                free.push(cell);
                reused += 1;
            }
            let Some(next) = free.pop() else {
                thread::yield_now();
                continue;
            };
            generation += 1;
            // Fresh or poisoned between lives, then initialised before it is published.
            let previous = cells[next].swap(generation, Ordering::Relaxed);
            assert!(previous == 0 || previous == POISON);
            current.store(next, Ordering::Release);
            let token = qsbr.retire_token();
            retired.push(token, published);
            published = next;
        }
        stop.store(true, Ordering::Relaxed);
        let loops: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        assert!(reused > UPDATES / 2, "cells were recycled: {reused}");
        assert!(loops.iter().all(|&l| l > 0));
        assert!(generation_seen.load(Ordering::Relaxed) > 0);
    }
}
