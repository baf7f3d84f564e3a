//! The communication port end to end against the image: the harness is the client
//! (`FilterConnectCommunicationPort`, `FilterSendMessage`, `CloseHandle`), the image answers
//! through the callbacks it gave `FltCreateCommunicationPort`, and every answer must equal
//! odx-core's `serve::handle_request` over the simulator's stack after the same scenario — the
//! image's counters and policies, read through its own port.
//!
//! Each message kind is sent with an exact, a short and a long buffer, malformed (a wrong magic,
//! another protocol version, a truncated header), with no input at all, and with output buffers
//! of the exact, a short, a long and no length. A buffer that is not mapped cannot be delivered
//! into the image's SEH handler on Linux (no SEH dispatch here): that path runs under Wine
//! (tests/wine/seh-shim.sh, docs/driver.md "Caller buffers of the port").

use anyhow::Result;
use odx_core::policy::PolicyMode;
use odx_core::port::{
    ALL_VOLUMES, ConfigReply, MessageHeader, MessageKind, PolicyReply, SetPolicyMessage, StatsReply,
};
use odx_core::serve::{PortTarget, handle_request};
use odx_core::{NtStatus, WireStruct};

use crate::driver::LoadedDriver;

/// `STATUS_CONNECTION_COUNT_LIMIT`.
const STATUS_CONNECTION_COUNT_LIMIT: NtStatus = NtStatus(0xC000_0246);

fn header(kind: MessageKind, volume: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; MessageHeader::SIZE];
    let _ = MessageHeader::new(kind, MessageHeader::SIZE, volume).serialize_into(&mut bytes);
    bytes
}

fn set_policy(volume: u32, mode: PolicyMode) -> Vec<u8> {
    let mut bytes = vec![0u8; SetPolicyMessage::SIZE];
    let _ = SetPolicyMessage::new(volume, mode).serialize_into(&mut bytes);
    bytes
}

/// The requests: every kind, for volume 0 and for all volumes.
fn requests(original: PolicyMode) -> Vec<(String, Vec<u8>, usize)> {
    let other = if original == PolicyMode::Monitor {
        PolicyMode::Enforce
    } else {
        PolicyMode::Monitor
    };
    vec![
        (
            "QueryStats 0".to_owned(),
            header(MessageKind::QueryStats, 0),
            StatsReply::SIZE,
        ),
        (
            "QueryStats all".to_owned(),
            header(MessageKind::QueryStats, ALL_VOLUMES),
            StatsReply::SIZE,
        ),
        (
            "QueryStats 7 (no volume)".to_owned(),
            header(MessageKind::QueryStats, 7),
            StatsReply::SIZE,
        ),
        (
            "QueryPolicy 0".to_owned(),
            header(MessageKind::QueryPolicy, 0),
            PolicyReply::SIZE,
        ),
        (
            "QueryConfig".to_owned(),
            header(MessageKind::QueryConfig, ALL_VOLUMES),
            ConfigReply::SIZE,
        ),
        (
            format!("SetPolicy 0 {other:?}"),
            set_policy(0, other),
            PolicyReply::SIZE,
        ),
        (
            "QueryPolicy 0 after the change".to_owned(),
            header(MessageKind::QueryPolicy, 0),
            PolicyReply::SIZE,
        ),
        (
            format!("SetPolicy 0 {original:?}"),
            set_policy(0, original),
            PolicyReply::SIZE,
        ),
        (
            "QueryPolicy all".to_owned(),
            header(MessageKind::QueryPolicy, ALL_VOLUMES),
            PolicyReply::SIZE,
        ),
    ]
}

/// Input variants of one request: exact, short, long, wrong magic, another version, no input.
fn inputs(exact: &[u8]) -> Vec<(&'static str, Option<Vec<u8>>)> {
    let mut short = exact.to_vec();
    short.pop();
    let mut long = exact.to_vec();
    long.extend_from_slice(&[0u8; 16]);
    let mut magic = exact.to_vec();
    if let Some(byte) = magic.first_mut() {
        *byte ^= 0xFF;
    }
    let mut version = exact.to_vec();
    if let Some(byte) = version.get_mut(4) {
        *byte = byte.wrapping_add(1);
    }
    vec![
        ("exact", Some(exact.to_vec())),
        ("short", Some(short)),
        ("long", Some(long)),
        ("wrong magic", Some(magic)),
        ("other version", Some(version)),
        (
            "truncated header",
            Some(exact.get(..4).unwrap_or_default().to_vec()),
        ),
        ("no input", None),
    ]
}

/// The simulator's answer: status and reply bytes.
fn expected<T: PortTarget>(
    target: &mut T,
    input: Option<&[u8]>,
    output_len: usize,
) -> (NtStatus, Vec<u8>) {
    let mut reply = vec![0u8; output_len];
    match handle_request(input.unwrap_or_default(), &mut reply, target) {
        Ok(written) => {
            reply.truncate(written);
            (NtStatus::STATUS_SUCCESS, reply)
        }
        Err(status) => (status, Vec::new()),
    }
}

/// A config reply without `volume_slots`, which is the filter's capacity (32 slots in the
/// driver, 1 in the simulator), not state.
fn without_slots(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    if let Ok(mut reply) = ConfigReply::parse(&bytes) {
        reply.volume_slots.set(0);
        let _ = reply.serialize_into(&mut bytes);
    }
    bytes
}

/// Connects, sends every request variant, checks a second client is refused, disconnects.
/// Returns one line per disagreement and the number of messages sent.
///
/// # Errors
/// The image created no port, or a callback lies outside the image.
pub fn round_trip<T: PortTarget>(
    driver: &mut LoadedDriver,
    simulator: &mut T,
    policy: PolicyMode,
) -> Result<(Vec<String>, usize)> {
    let mut problems = Vec::new();
    let mut sent = 0;
    let status = driver.port_connect()?;
    if !status.is_success() {
        problems.push(format!("port: the first client was refused with {status}"));
        return Ok((problems, sent));
    }
    let second = driver.port_connect()?;
    if second != STATUS_CONNECTION_COUNT_LIMIT {
        problems.push(format!(
            "port: a second client while one is connected got {second}, not STATUS_CONNECTION_COUNT_LIMIT (MaxConnections must be 1)"
        ));
    }
    for (what, request, reply_len) in requests(policy) {
        for (variant, input) in inputs(&request) {
            // A SetPolicy that succeeds changes state on both sides alike (and one refused for a
            // short reply buffer changes it on neither), so every variant can be sent; output
            // lengths are varied on the exact input only.
            let outputs: Vec<usize> = if variant == "exact" {
                vec![reply_len, reply_len - 1, reply_len + 64, 0]
            } else {
                vec![reply_len]
            };
            for output_len in outputs {
                let image = driver.port_message(input.as_deref(), output_len)?;
                sent += 1;
                let model = expected(simulator, input.as_deref(), output_len);
                let same = if what == "QueryConfig" {
                    image.0 == model.0 && without_slots(&image.1) == without_slots(&model.1)
                } else {
                    image == model
                };
                if !same {
                    problems.push(format!(
                        "port: {what}, {variant} input, {output_len}-byte output: image {} ({} bytes), odx-core serve over the simulator {} ({} bytes)",
                        image.0,
                        image.1.len(),
                        model.0,
                        model.1.len()
                    ));
                }
            }
        }
    }
    driver.port_disconnect()?;
    // After the disconnect a new client may connect again.
    let again = driver.port_connect()?;
    if !again.is_success() {
        problems.push(format!("port: a client after the disconnect got {again}"));
    } else {
        driver.port_disconnect()?;
    }
    Ok((problems, sent))
}
