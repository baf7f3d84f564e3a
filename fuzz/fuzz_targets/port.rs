//! The communication-port message parser (`port::parse_request`) on arbitrary bytes, and the
//! port structures' parse ∘ serialise round trip. An accepted request is consistent with its
//! header; a refused one gets one of the three documented statuses.

#![no_main]

use libfuzzer_sys::fuzz_target;
use odx_core::policy::PolicyMode;
use odx_core::port::{
    ConfigReply, MESSAGE_MAGIC, MessageHeader, PROTOCOL_VERSION, PolicyReply, PortRequest,
    SetPolicyMessage, StatsReply, parse_request,
};
use odx_core::{NtStatus, WireStruct};

fn round_trip<T: WireStruct + PartialEq + core::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = T::parse(data) {
        let mut out = vec![0u8; T::SIZE];
        assert_eq!(value.serialize_into(&mut out), Ok(T::SIZE));
        assert_eq!(&out[..], &data[..T::SIZE]);
    } else {
        assert!(data.len() < T::SIZE);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<MessageHeader>(data);
    round_trip::<SetPolicyMessage>(data);
    round_trip::<PolicyReply>(data);
    round_trip::<StatsReply>(data);
    round_trip::<ConfigReply>(data);

    match parse_request(data) {
        Ok(request) => {
            let header = MessageHeader::parse(data).expect("accepted without a header");
            assert_eq!(header.magic.get(), MESSAGE_MAGIC);
            assert_eq!(header.version.get(), PROTOCOL_VERSION);
            let declared = header.length.get() as usize;
            assert!(declared <= data.len() && declared >= MessageHeader::SIZE);
            let volume = match request {
                PortRequest::QueryStats { volume } => {
                    assert_eq!(header.kind.get(), 1);
                    volume
                }
                PortRequest::QueryPolicy { volume } => {
                    assert_eq!(header.kind.get(), 3);
                    volume
                }
                PortRequest::QueryConfig => {
                    assert_eq!(header.kind.get(), 6);
                    header.volume.get()
                }
                PortRequest::SetPolicy { volume, mode } => {
                    assert_eq!(header.kind.get(), 4);
                    assert!(declared >= SetPolicyMessage::SIZE);
                    let msg = SetPolicyMessage::parse(data).expect("short SetPolicy accepted");
                    assert_eq!(PolicyMode::from_u32(msg.mode.get()), Some(mode));
                    volume
                }
                PortRequest::SetRules { text } => {
                    assert_eq!(header.kind.get(), 8);
                    assert_eq!(text.len(), declared - MessageHeader::SIZE);
                    assert_eq!(text.as_bytes(), &data[MessageHeader::SIZE..declared]);
                    header.volume.get()
                }
                PortRequest::QueryRules => {
                    assert_eq!(header.kind.get(), 10);
                    header.volume.get()
                }
                PortRequest::ReadJournal {
                    from_seq,
                    max_records,
                } => {
                    assert_eq!(header.kind.get(), 12);
                    let msg = odx_core::port::governance::ReadJournalMessage::parse(data)
                        .expect("short ReadJournal accepted");
                    assert_eq!(
                        (msg.from_seq.get(), msg.max_records.get()),
                        (from_seq, max_records)
                    );
                    header.volume.get()
                }
            };
            assert_eq!(volume, header.volume.get());
        }
        Err(status) => assert!(
            [
                NtStatus::STATUS_BUFFER_TOO_SMALL,
                NtStatus::STATUS_REVISION_MISMATCH,
                NtStatus::STATUS_INVALID_PARAMETER,
            ]
            .contains(&status),
            "undocumented refusal {status:?}"
        ),
    }
});
