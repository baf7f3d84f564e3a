//! `odxctl stats` and `odxctl policy`: odxflt's statistics and policy through its communication
//! port — `\OdxfltPort` on Windows (`windows::port`), the simulated stack's
//! (`Stack::port_request`) with `--scenario`. Both speak `odx_core::port`'s messages.

use std::io::Write;

use odx_core::policy::PolicyMode;
use odx_core::port::{
    ALL_VOLUMES, ConfigReply, MessageHeader, MessageKind, PolicyReply, RegistrySource,
    SetPolicyMessage, StatsReply, StorageReport,
};
use odx_core::stats::{OpCounts, STATUS_BUCKETS};
use odx_core::status::STATUS_TABLE;
use odx_core::storage::{CopyOffloadLimits, StorageCapability, TICKS_PER_SECOND};
use odx_core::wire::WireStruct;
use odx_core::{NtStatus, OffloadOp};
use odx_sim::MemStore;
use odx_sim::scenario::Scenario;
use serde_json::{Value, json};
use zerocopy::IntoBytes;

use crate::codes::status_line;
use crate::text::{bytes, duration, ticks_to_seconds_up};
use crate::{CmdResult, Failure};

/// A connection to odxflt's port.
pub trait PortClient {
    /// Sends one request; the reply (at most `reply_len` bytes), or the status odxflt answered.
    ///
    /// # Errors
    /// odxflt's status, or a transport failure mapped to a status.
    fn send(&mut self, request: &[u8], reply_len: usize) -> Result<Vec<u8>, NtStatus>;
}

impl PortClient for odx_sim::Stack<MemStore> {
    fn send(&mut self, request: &[u8], reply_len: usize) -> Result<Vec<u8>, NtStatus> {
        self.port_request(request, reply_len)
    }
}

fn refused(what: &str, status: NtStatus) -> Failure {
    Failure {
        code: 1,
        message: format!("{what}: odxflt answered {}", status_line(status)),
    }
}

fn malformed(what: &str) -> Failure {
    Failure {
        code: 1,
        message: format!("{what}: odxflt's reply is malformed"),
    }
}

fn query<C: PortClient + ?Sized>(
    client: &mut C,
    kind: MessageKind,
    volume: u32,
    reply_len: usize,
) -> Result<Vec<u8>, Failure> {
    let header = MessageHeader::new(kind, MessageHeader::SIZE, volume);
    client
        .send(header.as_bytes(), reply_len)
        .map_err(|s| refused(&format!("{kind:?}"), s))
}

/// odxflt's configuration.
///
/// # Errors
/// The port refused or answered garbage.
pub fn config<C: PortClient + ?Sized>(client: &mut C) -> Result<ConfigReply, Failure> {
    let bytes = query(
        client,
        MessageKind::QueryConfig,
        ALL_VOLUMES,
        ConfigReply::SIZE,
    )?;
    ConfigReply::parse(&bytes).map_err(|_| malformed("QueryConfig"))
}

/// One volume's (or all volumes') statistics.
///
/// # Errors
/// The port refused or answered garbage.
pub fn stats<C: PortClient + ?Sized>(client: &mut C, volume: u32) -> Result<StatsReply, Failure> {
    let bytes = query(client, MessageKind::QueryStats, volume, StatsReply::SIZE)?;
    StatsReply::parse(&bytes).map_err(|_| malformed("QueryStats"))
}

fn registry_text(source: Option<RegistrySource>) -> String {
    match source {
        Some(RegistrySource::Absent) => "absent (enforce)".to_owned(),
        Some(RegistrySource::Valid(m)) => format!("{} ({})", m.as_u32(), m.name()),
        Some(RegistrySource::Invalid(v)) => format!("{v} is not 0, 1 or 2: enforce used instead"),
        Some(RegistrySource::WrongType) => "not a REG_DWORD: enforce used instead".to_owned(),
        None => "unknown".to_owned(),
    }
}

fn mode_name(value: u32) -> &'static str {
    PolicyMode::from_u32(value).map_or("?", PolicyMode::name)
}

fn buckets(counts: &[u64; STATUS_BUCKETS]) -> Vec<(String, u64)> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| {
            let name = STATUS_TABLE
                .get(i)
                .map_or_else(|| "other status".to_owned(), |row| status_line(row.status));
            (name, *n)
        })
        .collect()
}

fn counts_text(out: &mut dyn Write, op: &str, c: &OpCounts) -> std::io::Result<()> {
    writeln!(
        out,
        "  {op:<6} seen {}  forwarded {}  completed by odxflt {}  would refuse {}  truncated {}  failed below {}  fact query failed {}  offloaded {}",
        c.seen,
        c.forwarded,
        c.completed,
        c.would_refuse,
        c.truncated,
        c.failed_below,
        c.fact_failed,
        bytes(c.bytes_offloaded)
    )?;
    for (name, n) in buckets(&c.completed_by_status) {
        writeln!(out, "         completed {n} × {name}")?;
    }
    for (name, n) in buckets(&c.below_by_status) {
        writeln!(out, "         failed below {n} × {name}")?;
    }
    Ok(())
}

fn counts_json(c: &OpCounts) -> Value {
    let map = |b: &[u64; STATUS_BUCKETS]| {
        buckets(b)
            .into_iter()
            .map(|(name, n)| json!({ "status": name, "count": n }))
            .collect::<Vec<_>>()
    };
    json!({
        "seen": c.seen,
        "forwarded": c.forwarded,
        "completed": c.completed,
        "would_refuse": c.would_refuse,
        "truncated": c.truncated,
        "failed_below": c.failed_below,
        "bytes_offloaded": c.bytes_offloaded,
        "fact_failed": c.fact_failed,
        "completed_by_status": map(&c.completed_by_status),
        "below_by_status": map(&c.below_by_status),
    })
}

/// An active back-off as a stats reply states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The operation odxflt refuses early.
    pub op: OffloadOp,
    /// Interrupt time (100-ns ticks) it ends.
    pub until: u64,
    /// Interrupt time of the refusal that started it (`until` minus the period).
    pub refused_at: u64,
    /// Seconds left after the reply's `now`, rounded up.
    pub ends_in: u64,
}

/// The back-offs active when the reply was written, read first.
#[must_use]
pub fn backoffs(report: &StorageReport) -> Vec<Backoff> {
    let period = u64::from(report.backoff_seconds).saturating_mul(TICKS_PER_SECOND);
    [OffloadOp::Read, OffloadOp::Write]
        .into_iter()
        .filter_map(|op| {
            let until = report.backoff_until(op)?;
            Some(Backoff {
                op,
                until,
                refused_at: until.saturating_sub(period),
                ends_in: ticks_to_seconds_up(until.saturating_sub(report.now)),
            })
        })
        .collect()
}

/// `read` / `write`.
#[must_use]
pub const fn op_word(op: OffloadOp) -> &'static str {
    match op {
        OffloadOp::Read => "read",
        OffloadOp::Write => "write",
    }
}

/// An interrupt time (ticks since boot; the simulated clock with `--scenario`) in seconds.
#[must_use]
pub fn interrupt_time(ticks: u64) -> String {
    duration(ticks / TICKS_PER_SECOND)
}

/// The back-off period setting in words.
#[must_use]
pub fn backoff_setting(seconds: u32) -> String {
    if seconds == 0 {
        "never (OffloadBackoffSeconds 0)".to_owned()
    } else {
        duration(u64::from(seconds))
    }
}

/// A descriptor's limits in human units.
#[must_use]
pub fn limits_text(l: &CopyOffloadLimits) -> String {
    format!(
        "token lifetime {} (max {}), max transfer {} (optimal {}), {} descriptor(s) of at most {} block(s) (optimal {}), granularity {} block(s)",
        duration(u64::from(l.default_token_lifetime)),
        duration(u64::from(l.maximum_token_lifetime)),
        bytes(l.maximum_transfer_size),
        bytes(l.optimal_transfer_count),
        l.maximum_data_descriptors,
        l.maximum_transfer_length_per_descriptor,
        l.optimal_transfer_length_per_descriptor,
        l.optimal_transfer_length_granularity
    )
}

/// `odxctl stats`' lines for a volume's storage (after a two-space indent).
#[must_use]
pub fn storage_lines(report: &StorageReport) -> Vec<String> {
    let backoff = backoff_setting(report.backoff_seconds);
    let mut lines = vec![match &report.capability {
        StorageCapability::Supported(l) => format!(
            "storage supported (copy-offload descriptor): {}; back-off after a refusal: {backoff}",
            limits_text(l)
        ),
        StorageCapability::NotSupported => "storage not supported: the copy-offload property query answered STATUS_NOT_SUPPORTED, odxflt refuses every offload here with STATUS_NOT_SUPPORTED".to_owned(),
        StorageCapability::Unknown => format!(
            "storage unknown: the copy-offload property query was not answered; requests are forwarded and refusals learned; back-off after a refusal: {backoff}"
        ),
    }];
    for b in backoffs(report) {
        lines.push(format!(
            "        {} back-off ends in {} (refused at interrupt time {}, until {})",
            op_word(b.op),
            duration(b.ends_in),
            interrupt_time(b.refused_at),
            interrupt_time(b.until)
        ));
    }
    lines
}

fn limits_json(l: &CopyOffloadLimits) -> Value {
    json!({
        "maximum_token_lifetime_s": l.maximum_token_lifetime,
        "default_token_lifetime_s": l.default_token_lifetime,
        "maximum_transfer_size": l.maximum_transfer_size,
        "optimal_transfer_count": l.optimal_transfer_count,
        "maximum_data_descriptors": l.maximum_data_descriptors,
        "maximum_transfer_length_per_descriptor": l.maximum_transfer_length_per_descriptor,
        "optimal_transfer_length_per_descriptor": l.optimal_transfer_length_per_descriptor,
        "optimal_transfer_length_granularity": l.optimal_transfer_length_granularity,
    })
}

/// The storage section as JSON.
#[must_use]
pub fn storage_json(report: &StorageReport) -> Value {
    let backoff = |op| {
        backoffs(report).into_iter().find(|b| b.op == op).map(|b| {
            json!({
                "until": b.until,
                "refused_at": b.refused_at,
                "ends_in_seconds": b.ends_in,
            })
        })
    };
    json!({
        "capability": report.capability.name(),
        "descriptor": match &report.capability {
            StorageCapability::Supported(l) => limits_json(l),
            StorageCapability::Unknown | StorageCapability::NotSupported => Value::Null,
        },
        "backoff_seconds": report.backoff_seconds,
        "now": report.now,
        "read_backoff": backoff(OffloadOp::Read),
        "write_backoff": backoff(OffloadOp::Write),
    })
}

/// The volume's storage section, `None` for an `ALL_VOLUMES` reply (no storage of its own) or
/// a capability code this build does not know.
fn volume_storage(volume: u32, reply: &StatsReply) -> Option<StorageReport> {
    (volume != ALL_VOLUMES)
        .then(|| reply.storage.report())
        .flatten()
}

/// The stats reply of odxflt's only attached volume, when it has exactly one (user mode cannot
/// map odxflt's slots to volume names; with one volume there is nothing to map).
#[must_use]
pub fn sole_volume_stats<C: PortClient + ?Sized>(client: &mut C) -> Option<StatsReply> {
    let cfg = config(client).ok()?;
    if stats(client, ALL_VOLUMES).ok()?.volume_count.get() != 1 {
        return None;
    }
    (0..cfg.volume_slots.get()).find_map(|v| stats(client, v).ok())
}

fn volume_label(volume: u32) -> String {
    if volume == ALL_VOLUMES {
        "all volumes".to_owned()
    } else {
        format!("volume {volume}")
    }
}

/// `odxctl stats`: the given volume, or every attached volume and their sum.
///
/// # Errors
/// The port refused.
pub fn run_stats<C: PortClient + ?Sized>(
    out: &mut dyn Write,
    client: &mut C,
    volume: Option<u32>,
    json: bool,
) -> CmdResult {
    let cfg = config(client)?;
    let mut replies = Vec::new();
    match volume {
        Some(v) => replies.push((v, stats(client, v)?)),
        None => {
            for v in 0..cfg.volume_slots.get() {
                match stats(client, v) {
                    Ok(r) => replies.push((v, r)),
                    Err(_) => continue,
                }
            }
            replies.push((ALL_VOLUMES, stats(client, ALL_VOLUMES)?));
        }
    }
    if json {
        let doc = json!({
            "default_policy": mode_name(cfg.default_mode.get()),
            "registry_default_policy": registry_text(cfg.registry()),
            "volumes": replies.iter().map(|(v, r)| json!({
                "volume": if *v == ALL_VOLUMES { Value::from("all") } else { Value::from(*v) },
                "policy": mode_name(r.mode.get()),
                "attached_volumes": r.volume_count.get(),
                "read": counts_json(&OpCounts::from(&r.read)),
                "write": counts_json(&OpCounts::from(&r.write)),
                "storage": volume_storage(*v, r).as_ref().map(storage_json),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{doc}")?;
        return Ok(0);
    }
    writeln!(
        out,
        "odxflt: default policy {}, registry DefaultPolicy {}",
        mode_name(cfg.default_mode.get()),
        registry_text(cfg.registry())
    )?;
    for (v, r) in &replies {
        let label = if *v == ALL_VOLUMES {
            format!("all volumes ({} attached)", r.volume_count.get())
        } else {
            format!("volume {v}, policy {}", mode_name(r.mode.get()))
        };
        writeln!(out, "{label}")?;
        if let Some(storage) = volume_storage(*v, r) {
            for line in storage_lines(&storage) {
                writeln!(out, "  {line}")?;
            }
        }
        counts_text(out, "read", &OpCounts::from(&r.read))?;
        counts_text(out, "write", &OpCounts::from(&r.write))?;
    }
    Ok(0)
}

/// `odxctl policy [--volume N] [MODE]`: prints the policy, or sets it (for one volume, or the
/// default and every volume).
///
/// # Errors
/// Unknown mode, or the port refused.
pub fn run_policy<C: PortClient + ?Sized>(
    out: &mut dyn Write,
    client: &mut C,
    volume: Option<u32>,
    mode: Option<&str>,
    json: bool,
) -> CmdResult {
    let volume = volume.unwrap_or(ALL_VOLUMES);
    let reply = match mode {
        Some(name) => {
            let mode = PolicyMode::from_name(name).ok_or_else(|| {
                Failure::input(format!("unknown policy {name:?}: enforce, monitor or veto"))
            })?;
            let request = SetPolicyMessage::new(volume, mode);
            client
                .send(request.as_bytes(), PolicyReply::SIZE)
                .map_err(|s| refused("SetPolicy", s))?
        }
        None => query(client, MessageKind::QueryPolicy, volume, PolicyReply::SIZE)?,
    };
    let reply = PolicyReply::parse(&reply).map_err(|_| malformed("policy"))?;
    let cfg = config(client)?;
    let now = mode_name(reply.mode.get());
    if json {
        let doc = json!({
            "volume": if volume == ALL_VOLUMES { Value::from("all") } else { Value::from(volume) },
            "policy": now,
            "changed": mode.is_some(),
            "attached_volumes": reply.volume_count.get(),
            "registry_default_policy": registry_text(cfg.registry()),
        });
        writeln!(out, "{doc}")?;
    } else {
        let verb = if mode.is_some() { "is now" } else { "is" };
        let whose = if volume == ALL_VOLUMES {
            format!(
                "default policy (and every volume's, when set) of {} attached volume(s)",
                reply.volume_count.get()
            )
        } else {
            format!("{} policy", volume_label(volume))
        };
        writeln!(out, "odxflt {whose} {verb} {now}")?;
        writeln!(
            out,
            "registry DefaultPolicy: {}",
            registry_text(cfg.registry())
        )?;
    }
    Ok(0)
}

/// Loads a scenario and runs its steps, so the statistics are those of its requests.
///
/// # Errors
/// Malformed scenario or store failure.
pub fn scenario_stack(path: &std::path::Path) -> Result<odx_sim::Stack<MemStore>, Failure> {
    let scenario = Scenario::load(path).map_err(|e| Failure::input(e.to_string()))?;
    let (_, stack) = scenario
        .run_keeping_stack(MemStore::new())
        .map_err(|e| Failure::input(format!("{}: {e}", scenario.path)))?;
    Ok(stack)
}
