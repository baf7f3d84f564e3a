//! `odxctl stats` and `odxctl policy`: odxflt's statistics and policy through its communication
//! port — `\OdxfltPort` on Windows (`windows::port`), the simulated stack's
//! (`Stack::port_request`) with `--scenario`. Both speak `odx_core::port`'s messages.

use std::io::Write;

use odx_core::NtStatus;
use odx_core::policy::PolicyMode;
use odx_core::port::{
    ALL_VOLUMES, ConfigReply, MessageHeader, MessageKind, PolicyReply, RegistrySource,
    SetPolicyMessage, StatsReply,
};
use odx_core::stats::{OpCounts, STATUS_BUCKETS};
use odx_core::status::STATUS_TABLE;
use odx_core::wire::WireStruct;
use odx_sim::MemStore;
use odx_sim::scenario::Scenario;
use serde_json::{Value, json};
use zerocopy::IntoBytes;

use crate::codes::status_line;
use crate::text::bytes;
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
