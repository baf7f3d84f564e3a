//! The governance rules in force: one `odx_core::governance::RuleSet` (57,872 bytes) in the
//! image's non-paged data, behind a Filter Manager push lock.
//!
//! - **Readers** are pre-operations (IRQL <= APC_LEVEL): `FltAcquirePushLockShared`, evaluate,
//!   `FltReleasePushLock`. The whole core pre-operation runs under the shared lock, file-name
//!   and process-name queries included, because the core borrows the set for the evaluation.
//! - **The only writer** is the port's message callback (PASSIVE_LEVEL, `SetRules`), under
//!   `FltAcquirePushLockExclusive`; and `DriverEntry`'s registry load, before the filter starts
//!   (no reader can exist yet) — it takes the exclusive lock anyway.
//!
//! Both acquire routines disable normal kernel APCs themselves and `FltReleasePushLock`
//! re-enables them (fltkernel/nf-fltkernel-fltacquirepushlockshared, "...exclusive": "it is not
//! necessary to call KeEnterCriticalRegion or FsRtlEnterFileSystem"), so no critical region is
//! entered here. Push locks are not recursive: a shared re-acquire waits behind a queued
//! exclusive waiter. **Why that cannot deadlock:** a reader never acquires the lock again while
//! holding it — odxflt registers only `IRP_MJ_FILE_SYSTEM_CONTROL` and takes the lock only for
//! offload FSCTLs, and the name queries it makes under the lock (`FltGetFileNameInformation`,
//! `SeLocateProcessImageName`, `FltQueryInformationFile`) are not offload FSCTLs, so they never
//! re-enter odxflt's lock on the same thread; the writer (the port callback) calls nothing that
//! waits for a file system or for a reader while it holds the lock (the core parses text into
//! the set, in place). A request with no rules configured (`PRESENT` false) takes no lock.
//!
//! Host builds (unit tests) use a spin flag in place of the push lock.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use odx_core::governance::RuleSet;

/// The set and its lock.
struct Store {
    /// `EX_PUSH_LOCK` (pointer-sized, non-paged: it is in the image's data).
    lock: UnsafeCell<usize>,
    /// The rules.
    set: UnsafeCell<RuleSet>,
}

// SAFETY: `set` is only reached through `read` (shared push lock) and `write` (exclusive push
// lock); `lock` is only handed to the push-lock routines, which synchronise it themselves.
unsafe impl Sync for Store {}

static STORE: Store = Store {
    lock: UnsafeCell::new(0),
    set: UnsafeCell::new(RuleSet::new()),
};

/// At least one rule is in force (kept under the exclusive lock; read without it: a request
/// that reads `false` is governed by the old, empty set, a consistent view).
static PRESENT: AtomicBool = AtomicBool::new(false);

#[cfg(target_os = "windows")]
mod lock {
    use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
        FltAcquirePushLockExclusive, FltAcquirePushLockShared, FltInitializePushLock,
        FltReleasePushLock,
    };

    pub fn init(lock: *mut usize) {
        // SAFETY: `lock` is the store's EX_PUSH_LOCK, initialised once in DriverEntry before
        // any acquire (PASSIVE_LEVEL).
        unsafe { FltInitializePushLock(lock) };
    }
    pub fn shared(lock: *mut usize) {
        // SAFETY: an initialised push lock; IRQL <= APC_LEVEL (pre-operation); this thread
        // does not hold it (module comment).
        unsafe { FltAcquirePushLockShared(lock) };
    }
    pub fn exclusive(lock: *mut usize) {
        // SAFETY: an initialised push lock; PASSIVE_LEVEL (port callback, DriverEntry); this
        // thread does not hold it.
        unsafe { FltAcquirePushLockExclusive(lock) };
    }
    pub fn release(lock: *mut usize) {
        // SAFETY: this thread acquired `lock` (shared or exclusive) and releases it once.
        unsafe { FltReleasePushLock(lock) };
    }
}

#[cfg(not(target_os = "windows"))]
mod lock {
    use core::sync::atomic::{AtomicBool, Ordering};

    static HELD: AtomicBool = AtomicBool::new(false);

    pub fn init(_lock: *mut usize) {}
    pub fn shared(lock: *mut usize) {
        exclusive(lock);
    }
    pub fn exclusive(_lock: *mut usize) {
        while HELD
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
    }
    pub fn release(_lock: *mut usize) {
        HELD.store(false, Ordering::Release);
    }
}

/// Holds the lock (shared or exclusive) until dropped.
struct Held;

impl Drop for Held {
    fn drop(&mut self) {
        lock::release(STORE.lock.get());
    }
}

/// `FltInitializePushLock` (DriverEntry, before anything reads the rules).
pub fn init() {
    lock::init(STORE.lock.get());
}

/// No rule is in force: the request path skips governance without taking the lock.
#[must_use]
pub fn none() -> bool {
    !PRESENT.load(Ordering::Acquire)
}

/// The rules in force, under the shared lock until dropped (pre-operation, IRQL <= APC_LEVEL).
#[derive(Debug)]
pub struct Shared {
    _held: HeldShared,
}

#[derive(Debug)]
struct HeldShared;

impl Drop for HeldShared {
    fn drop(&mut self) {
        lock::release(STORE.lock.get());
    }
}

impl Shared {
    /// `FltAcquirePushLockShared`.
    #[must_use]
    pub fn acquire() -> Self {
        lock::shared(STORE.lock.get());
        Self { _held: HeldShared }
    }

    /// The set.
    #[must_use]
    pub fn set(&self) -> &RuleSet {
        // SAFETY: the shared lock, held while `self` lives, excludes the only writer (`write`,
        // exclusive); the borrow cannot outlive `self`.
        unsafe { &*STORE.set.get() }
    }
}

/// Calls `f` with the rules in force, under the shared lock (IRQL <= APC_LEVEL).
pub fn read<R>(f: impl FnOnce(&RuleSet) -> R) -> R {
    let shared = Shared::acquire();
    f(shared.set())
}

/// Calls `f` with the rules to change, under the exclusive lock (PASSIVE_LEVEL).
pub fn write<R>(f: impl FnOnce(&mut RuleSet) -> R) -> R {
    lock::exclusive(STORE.lock.get());
    let _held = Held;
    // SAFETY: the exclusive lock excludes every reader and other writers for `_held`'s life.
    let set = unsafe { &mut *STORE.set.get() };
    let result = f(set);
    PRESENT.store(!set.is_empty(), Ordering::Release);
    result
}
