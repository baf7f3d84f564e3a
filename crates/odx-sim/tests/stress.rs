//! Concurrency stress of one simulated stack (in-memory store) shared by several threads.
//!
//! Copier threads offload-copy (offload read → token → offload writes in chunks, through the I/O
//! manager, odxflt, the volume and the token engine) between files while writer threads do plain
//! writes to the same files and a clock thread advances the engine clock. Every operation takes
//! the one lock around the stack, so operations interleave at request granularity.
//!
//! Under that lock the test keeps a shadow of the truth:
//! - for every token it made: the source bytes as they were when the token was made (snapshot
//!   taken under the same lock hold as the offload read), its expiry computed from the clock and
//!   the requested lifetime, and whether any byte of its source range has been written since;
//! - for every byte of every file: the sequence number of its last writer;
//! - a ledger of every successful offload write still owning at least one byte (destination,
//!   offset, length written, token id, the snapshot slice it must equal).
//!
//! Violations (all must be zero): an accepted offload write whose token had expired (now ≥
//! expiry, by the shadow and by the engine's own record) or whose source range had been written
//! since it was made; destination bytes that differ from the token's snapshot right after the
//! write; and, at the end, any byte whose last writer is an offload write and that differs from
//! that write's snapshot.
//!
//! Small by default (the normal test suite). Longer: `ODX_STRESS_SECONDS=60 cargo test -p odx-sim
//! --release --test stress -- --nocapture`. `ODX_STRESS_SEED` replays a seed (the interleaving
//! still depends on the scheduler).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use odx_core::engine::{EngineLimits, TokenKey, TokenStore, key_of};
use odx_core::flags::{AccessMask, SupportedFeatures};
use odx_core::iomgr::FilterSupportedFeaturesMode;
use odx_core::wire::StorageOffloadToken;
use odx_core::{NtStatus, SectorSize};
use odx_sim::{DataStore, FileId, HandleId, MemStore, Stack, VolumeConfig};

const SECTOR: u64 = 512;

/// splitmix64: small, seedable, good enough to pick offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Params {
    files: usize,
    file_size: u64,
    copiers: usize,
    writers: usize,
    /// Copy jobs per copier thread (count bound).
    jobs_per_copier: u64,
    /// Plain writes per writer thread (count bound).
    writes_per_writer: u64,
    /// Wall-time bound.
    duration: Duration,
    seed: u64,
}

impl Params {
    fn from_env() -> Self {
        let seed = std::env::var("ODX_STRESS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        let long = std::env::var("ODX_STRESS_SECONDS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        match long {
            Some(secs) => Self {
                files: 8,
                file_size: 256 * 1024,
                copiers: 4,
                writers: 2,
                jobs_per_copier: u64::MAX,
                writes_per_writer: u64::MAX,
                duration: Duration::from_secs(secs),
                seed,
            },
            None => Self {
                files: 6,
                file_size: 64 * 1024,
                copiers: 3,
                writers: 2,
                jobs_per_copier: 150,
                writes_per_writer: 300,
                duration: Duration::from_secs(4),
                seed,
            },
        }
    }
}

/// What the test knows about a token it made.
#[derive(Debug)]
struct Shadow {
    source: usize,
    offset: u64,
    length: u64,
    expires_ms: u64,
    /// A byte of the source range was written after the token was made.
    stale: bool,
    /// The source bytes `[offset, offset + length)` when the token was made.
    snapshot: Arc<[u8]>,
}

/// One successful offload write that still owns bytes of its destination.
#[derive(Debug)]
struct LedgerEntry {
    dest: usize,
    offset: u64,
    length: u64,
    token_id: u64,
    /// Expected bytes: `snapshot[start .. start + length]`.
    snapshot: Arc<[u8]>,
    start: usize,
    /// Bytes of which this write is still the last writer.
    owned: u64,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    copy_jobs: u64,
    copies_completed: u64,
    offload_reads: u64,
    truncated_reads: u64,
    offload_writes: u64,
    bytes_offloaded: u64,
    invalidated: u64,
    expired: u64,
    expiry_edge_accepted: u64,
    expiry_edge_refused: u64,
    unexplained_refusals: u64,
    plain_writes: u64,
    clock_ticks: u64,
    other_failures: BTreeMap<String, u64>,
    // Violations.
    accepted_expired: u64,
    accepted_stale: u64,
    immediate_mismatch: u64,
    final_mismatch: u64,
    ledger_live_at_end: u64,
}

impl Counts {
    fn violations(&self) -> u64 {
        self.accepted_expired + self.accepted_stale + self.immediate_mismatch + self.final_mismatch
    }
}

struct File {
    id: FileId,
    handle: HandleId,
}

struct World {
    stack: Stack<MemStore>,
    files: Vec<File>,
    size: u64,
    limits: EngineLimits,
    last_writer: Vec<Vec<u64>>,
    ledger: HashMap<u64, LedgerEntry>,
    tokens: HashMap<TokenKey, Shadow>,
    seq: u64,
    counts: Counts,
}

fn status_name(status: NtStatus) -> String {
    status
        .name()
        .map_or_else(|| format!("{status}"), str::to_owned)
}

fn token_id(key: &TokenKey) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&key[..8]);
    u64::from_le_bytes(id)
}

impl World {
    fn new(p: &Params, rng: &mut Rng) -> Self {
        let config = VolumeConfig {
            default_ttl_ms: 80,
            max_ttl_ms: 400,
            // Tokens stand for at most 32 KiB: longer requests are truncated.
            max_transfer: 32 * 1024,
            ..VolumeConfig::default()
        };
        let limits = EngineLimits {
            default_ttl_ms: config.default_ttl_ms,
            max_ttl_ms: config.max_ttl_ms,
            max_transfer: config.max_transfer,
            sector_size: SectorSize::DEFAULT,
        };
        let mut stack = Stack::new(
            config,
            MemStore::new(),
            vec![SupportedFeatures::ODXFLT],
            FilterSupportedFeaturesMode::Normal,
        );
        let mut files = Vec::new();
        let mut data = vec![0u8; p.file_size as usize];
        for i in 0..p.files {
            let vol = stack.volume_mut();
            let id = vol.create_file(&format!("f{i}")).unwrap();
            rng.fill(&mut data);
            vol.write_data(id, 0, &data).unwrap();
            let handle = stack
                .open(id, AccessMask::READ_DATA | AccessMask::WRITE_DATA)
                .unwrap();
            files.push(File { id, handle });
        }
        Self {
            stack,
            files,
            size: p.file_size,
            limits,
            last_writer: vec![vec![0; p.file_size as usize]; p.files],
            ledger: HashMap::new(),
            tokens: HashMap::new(),
            seq: 0,
            counts: Counts::default(),
        }
    }

    fn read_bytes(&self, file: usize, offset: u64, length: u64) -> Vec<u8> {
        let mut buf = vec![0u8; length as usize];
        let n = self
            .stack
            .volume()
            .read_data(self.files[file].id, offset, &mut buf)
            .unwrap();
        // Past end of file reads as zero (never happens here: files keep their size).
        buf[n..].fill(0);
        buf
    }

    /// Bytes `[offset, offset + length)` of `file` were written by `seq` (an offload write when
    /// it has a ledger entry): tokens over them go stale, the last writer of each byte changes.
    fn written(&mut self, file: usize, offset: u64, length: u64, seq: u64) {
        let end = offset + length;
        for shadow in self.tokens.values_mut() {
            if shadow.source == file
                && shadow.offset < end
                && offset < shadow.offset + shadow.length
            {
                shadow.stale = true;
            }
        }
        let owners = &mut self.last_writer[file][offset as usize..end as usize];
        for owner in owners {
            if let Some(entry) = self.ledger.get_mut(owner) {
                entry.owned -= 1;
                if entry.owned == 0 {
                    self.ledger.remove(owner);
                }
            }
            *owner = seq;
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn plain_write(&mut self, rng: &mut Rng) {
        let file = rng.range(0, self.files.len() as u64 - 1) as usize;
        let length = rng.range(1, 3 * SECTOR);
        let offset = rng.range(0, self.size - length);
        let mut data = vec![0u8; length as usize];
        rng.fill(&mut data);
        match self.stack.write(self.files[file].handle, offset, &data) {
            Ok(()) => {
                let seq = self.next_seq();
                self.written(file, offset, length, seq);
                self.counts.plain_writes += 1;
            }
            Err(status) => self.other_failure("plain write", status),
        }
    }

    fn other_failure(&mut self, what: &str, status: NtStatus) {
        *self
            .counts
            .other_failures
            .entry(format!("{what}: {}", status_name(status)))
            .or_default() += 1;
    }

    /// Offload read of a random range of `source`; snapshots the bytes under the same lock hold.
    fn offload_read(
        &mut self,
        rng: &mut Rng,
        source: usize,
    ) -> Option<(TokenKey, StorageOffloadToken, u64)> {
        let sectors = self.size / SECTOR;
        let length = rng.range(1, 96) * SECTOR;
        let offset = rng.range(0, sectors - length / SECTOR) * SECTOR;
        // 0 = the default lifetime; otherwise 20..=600 ms (capped at 400 by the engine).
        let ttl = if rng.one_in(4) {
            0
        } else {
            rng.range(20, 600) as u32
        };
        let now = self.stack.volume().now_ms();
        match self
            .stack
            .offload_read(self.files[source].handle, offset, length, ttl)
        {
            Ok(read) => {
                self.counts.offload_reads += 1;
                if read.transfer_length < length {
                    self.counts.truncated_reads += 1;
                }
                let key = key_of(&read.token).expect("a token of the simulated array");
                let snapshot: Arc<[u8]> =
                    self.read_bytes(source, offset, read.transfer_length).into();
                self.tokens.insert(
                    key,
                    Shadow {
                        source,
                        offset,
                        length: read.transfer_length,
                        expires_ms: self.limits.expiry(now, ttl),
                        stale: false,
                        snapshot,
                    },
                );
                Some((key, read.token, read.transfer_length))
            }
            Err(status) => {
                self.other_failure("offload read", status);
                None
            }
        }
    }

    /// One offload write of up to `length` bytes of the token's data at `transfer_offset` to
    /// `dest` at `offset`. Returns the bytes written, or `None` when the token was refused.
    #[allow(clippy::too_many_arguments)]
    fn offload_write(
        &mut self,
        key: &TokenKey,
        token: &StorageOffloadToken,
        dest: usize,
        offset: u64,
        length: u64,
        transfer_offset: u64,
        edge: Option<bool>,
    ) -> Option<u64> {
        let (expires_ms, stale) = {
            let s = &self.tokens[key];
            (s.expires_ms, s.stale)
        };
        if let Some(at_expiry) = edge {
            // Put the clock exactly one ms before, or exactly at, the token's expiry.
            let target = if at_expiry {
                expires_ms
            } else {
                expires_ms - 1
            };
            let now = self.stack.volume().now_ms();
            if now < target {
                self.stack.advance_ms(target - now);
            }
        }
        let now = self.stack.volume().now_ms();
        let engine_record = self.stack.volume().engine().store().get(key);
        let result = self.stack.offload_write(
            self.files[dest].handle,
            offset,
            length,
            transfer_offset,
            token,
        );
        match result {
            Ok(written) => {
                self.counts.offload_writes += 1;
                self.counts.bytes_offloaded += written;
                if edge.is_some() {
                    self.counts.expiry_edge_accepted += 1;
                }
                if now >= expires_ms || engine_record.is_none_or(|r| now >= r.expires_ms) {
                    self.counts.accepted_expired += 1;
                }
                if stale {
                    self.counts.accepted_stale += 1;
                }
                let snapshot = Arc::clone(&self.tokens[key].snapshot);
                let start = transfer_offset as usize;
                let Some(expected) = snapshot.get(start..start + written as usize) else {
                    // More bytes than the token stands for.
                    self.counts.immediate_mismatch += 1;
                    return None;
                };
                if self.read_bytes(dest, offset, written) != expected {
                    self.counts.immediate_mismatch += 1;
                }
                let seq = self.next_seq();
                self.written(dest, offset, written, seq);
                self.ledger.insert(
                    seq,
                    LedgerEntry {
                        dest,
                        offset,
                        length: written,
                        token_id: token_id(key),
                        snapshot,
                        start,
                        owned: written,
                    },
                );
                Some(written)
            }
            Err(NtStatus::STATUS_INVALID_TOKEN) => {
                if now >= expires_ms {
                    self.counts.expired += 1;
                    if edge.is_some() {
                        self.counts.expiry_edge_refused += 1;
                    }
                } else if stale {
                    self.counts.invalidated += 1;
                } else {
                    self.counts.unexplained_refusals += 1;
                }
                None
            }
            Err(status) => {
                self.other_failure("offload write", status);
                None
            }
        }
    }

    /// End of run: every byte whose last writer is an offload write equals that write's
    /// snapshot.
    fn final_check(&mut self) {
        let mut bad = 0;
        for (&seq, entry) in &self.ledger {
            let actual = self.read_bytes(entry.dest, entry.offset, entry.length);
            let expected = &entry.snapshot[entry.start..entry.start + entry.length as usize];
            let owners = &self.last_writer[entry.dest]
                [entry.offset as usize..(entry.offset + entry.length) as usize];
            let differs = owners
                .iter()
                .zip(actual.iter().zip(expected))
                .any(|(&owner, (a, e))| owner == seq && a != e);
            if differs {
                bad += 1;
                eprintln!(
                    "violation: offload write #{seq} (token {:016x}) to f{} at {} len {} no longer \
                     holds the token's data",
                    entry.token_id, entry.dest, entry.offset, entry.length
                );
            }
        }
        self.counts.final_mismatch = bad;
        self.counts.ledger_live_at_end = self.ledger.len() as u64;
    }
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn copier(world: &Mutex<World>, p: Params, seed: u64, deadline: Instant) {
    let mut rng = Rng(seed);
    let files = p.files as u64;
    for _ in 0..p.jobs_per_copier {
        if Instant::now() >= deadline {
            break;
        }
        let source = rng.range(0, files - 1) as usize;
        let dest = ((source as u64 + rng.range(1, files - 1)) % files) as usize;
        let made = {
            let mut w = lock(world);
            w.counts.copy_jobs += 1;
            w.offload_read(&mut rng, source)
        };
        let Some((key, token, transfer_length)) = made else {
            continue;
        };
        let dest_offset = rng.range(0, (p.file_size - transfer_length) / SECTOR) * SECTOR;
        let mut done = 0;
        let mut completed = true;
        while done < transfer_length {
            // Let the writers and the clock in between chunks; sometimes for a while.
            if rng.one_in(6) {
                thread::sleep(Duration::from_micros(rng.range(50, 1500)));
            } else {
                thread::yield_now();
            }
            let chunk = (rng.range(1, 40) * SECTOR).min(transfer_length - done);
            let edge = rng.one_in(24).then(|| rng.one_in(2));
            let mut w = lock(world);
            match w.offload_write(&key, &token, dest, dest_offset + done, chunk, done, edge) {
                Some(written) if written > 0 => done += written,
                _ => {
                    completed = false;
                    break;
                }
            }
        }
        let mut w = lock(world);
        w.tokens.remove(&key);
        if completed {
            w.counts.copies_completed += 1;
        }
    }
}

fn writer(world: &Mutex<World>, p: Params, seed: u64, deadline: Instant) {
    let mut rng = Rng(seed);
    for _ in 0..p.writes_per_writer {
        if Instant::now() >= deadline {
            break;
        }
        lock(world).plain_write(&mut rng);
        if rng.one_in(3) {
            thread::sleep(Duration::from_micros(rng.range(20, 400)));
        } else {
            thread::yield_now();
        }
    }
}

fn clock(world: &Mutex<World>, seed: u64, workers_left: &AtomicUsize, stop: &AtomicBool) {
    let mut rng = Rng(seed);
    while workers_left.load(Ordering::Acquire) > 0 && !stop.load(Ordering::Acquire) {
        {
            let mut w = lock(world);
            w.stack.advance_ms(rng.range(1, 8));
            w.counts.clock_ticks += 1;
        }
        thread::sleep(Duration::from_micros(rng.range(50, 300)));
    }
}

fn run(p: Params) -> Counts {
    let mut rng = Rng(p.seed);
    let world = Arc::new(Mutex::new(World::new(&p, &mut rng)));
    let deadline = Instant::now() + p.duration;
    let workers_left = Arc::new(AtomicUsize::new(p.copiers + p.writers));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..p.copiers + p.writers {
        let (world, left, seed) = (Arc::clone(&world), Arc::clone(&workers_left), rng.next());
        let is_copier = i < p.copiers;
        threads.push(thread::spawn(move || {
            if is_copier {
                copier(&world, p, seed, deadline);
            } else {
                writer(&world, p, seed, deadline);
            }
            left.fetch_sub(1, Ordering::AcqRel);
        }));
    }
    let clock_thread = {
        let (world, left, stop, seed) = (
            Arc::clone(&world),
            Arc::clone(&workers_left),
            Arc::clone(&stop),
            rng.next(),
        );
        thread::spawn(move || clock(&world, seed, &left, &stop))
    };
    let mut panicked = false;
    for t in threads {
        panicked |= t.join().is_err();
    }
    stop.store(true, Ordering::Release);
    panicked |= clock_thread.join().is_err();
    assert!(!panicked, "a stress thread panicked");
    let mut w = lock(&world);
    w.final_check();
    w.counts.clone()
}

fn report(p: &Params, c: &Counts, elapsed: Duration) {
    println!(
        "stress: seed {} | {} files x {} KiB, {} copiers, {} writers, {:.2} s",
        p.seed,
        p.files,
        p.file_size / 1024,
        p.copiers,
        p.writers,
        elapsed.as_secs_f64()
    );
    println!(
        "  copy jobs {} (completed {}), offload reads {} (truncated {}), offload writes {} ({} bytes)",
        c.copy_jobs,
        c.copies_completed,
        c.offload_reads,
        c.truncated_reads,
        c.offload_writes,
        c.bytes_offloaded
    );
    println!(
        "  STATUS_INVALID_TOKEN: invalidated {}, expired {} (expiry edge: accepted at expiry-1 {}, \
         refused at expiry {}), unexplained {}",
        c.invalidated,
        c.expired,
        c.expiry_edge_accepted,
        c.expiry_edge_refused,
        c.unexplained_refusals
    );
    println!(
        "  plain writes {}, clock ticks {}, other failures {:?}, ledger entries live at end {}",
        c.plain_writes, c.clock_ticks, c.other_failures, c.ledger_live_at_end
    );
    println!(
        "  violations {} (accepted expired {}, accepted stale {}, mismatch after write {}, \
         mismatch at end {})",
        c.violations(),
        c.accepted_expired,
        c.accepted_stale,
        c.immediate_mismatch,
        c.final_mismatch
    );
}

#[test]
fn offload_copies_writes_and_clock_interleave_without_stale_data() {
    let p = Params::from_env();
    let started = Instant::now();
    let c = run(p);
    report(&p, &c, started.elapsed());
    assert_eq!(c.violations(), 0, "stress violations (seed {})", p.seed);
    assert_eq!(
        c.unexplained_refusals, 0,
        "a live, unwritten token was refused"
    );
    assert!(
        c.other_failures.is_empty(),
        "unexpected failures: {:?}",
        c.other_failures
    );
    // The run exercised what it claims to.
    assert!(c.offload_writes > 0 && c.copies_completed > 0, "{c:?}");
    assert!(c.plain_writes > 0 && c.clock_ticks > 0, "{c:?}");
    assert!(c.invalidated > 0, "no invalidation observed: {c:?}");
    assert!(
        c.expired > 0 && c.expiry_edge_refused > 0,
        "no expiry observed: {c:?}"
    );
    assert!(c.ledger_live_at_end > 0, "{c:?}");
}

/// The ledger itself: a write over part of an offload-written range takes those bytes away from
/// it, and the check then ignores them; an untouched byte that differs is a violation.
#[test]
fn the_ledger_attributes_bytes_to_their_last_writer() {
    let p = Params {
        files: 2,
        file_size: 16 * 1024,
        copiers: 0,
        writers: 0,
        jobs_per_copier: 0,
        writes_per_writer: 0,
        duration: Duration::ZERO,
        seed: 7,
    };
    let mut rng = Rng(p.seed);
    let mut w = World::new(&p, &mut rng);
    let mut made = None;
    while made.is_none() {
        made = w.offload_read(&mut rng, 0);
    }
    let (key, token, length) = made.unwrap();
    let written = w
        .offload_write(&key, &token, 1, 0, length, 0, None)
        .unwrap();
    assert_eq!(written, length);
    w.final_check();
    assert_eq!(w.counts.violations(), 0);
    // Overwrite the first byte through the stack: the ledger no longer owns it.
    let handle = w.files[1].handle;
    w.stack
        .write(handle, 0, &[!w.read_bytes(1, 0, 1)[0]])
        .unwrap();
    let seq = w.next_seq();
    w.written(1, 0, 1, seq);
    w.final_check();
    assert_eq!(w.counts.violations(), 0);
    // Change a byte behind the shadow's back (the volume directly, no bookkeeping): caught.
    let id = w.files[1].id;
    let old = w.read_bytes(1, 1, 1)[0];
    w.stack
        .volume_mut()
        .data_mut()
        .write_at(id, 1, &[!old])
        .unwrap();
    w.final_check();
    assert_eq!(w.counts.final_mismatch, 1);
}
