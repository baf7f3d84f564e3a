//! The core's fact queries answered from the kernel, lazily: the core asks in its check order and
//! stops at the first failing rule, so a misaligned request never costs a
//! `FltQueryInformationFile`. [`KernelFacts`] holds the interpretation (raw kernel values → core
//! facts); the raw values come through [`KernelSource`], implemented by `ffi::query` in the
//! driver and by a scripted source in the tests.

use odx_core::flags::{FileAttributes, StreamMarkers};
use odx_core::{
    ByteRange, HandleFacts, LockIntent, NtStatus, OffloadFacts, StreamKind, StreamSizes,
    VolumeFacts,
};

/// `FILE_OBJECT` fields the handle facts come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileObjectState {
    /// `ReadAccess`. Not a fact odxflt decides on: it is share-access bookkeeping, not the
    /// handle's granted access, and the access check is the I/O manager's (odx-core makes none).
    pub read_access: bool,
    /// `WriteAccess`. Not a fact odxflt decides on (see `read_access`).
    pub write_access: bool,
    /// `Flags`.
    pub flags: u32,
}

/// `FO_CLEANUP_COMPLETE`: the last handle to the file object has been closed.
pub const FO_CLEANUP_COMPLETE: u32 = 0x0000_4000;

/// `FILE_STANDARD_INFORMATION` fields the stream sizes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StandardInformation {
    /// `EndOfFile`.
    pub end_of_file: i64,
    /// `DeletePending`.
    pub delete_pending: bool,
}

/// Raw kernel values, one method per source. Each is called at most once per request.
pub trait KernelSource {
    /// The volume context's facts (`FltGetVolumeContext`).
    ///
    /// # Errors
    /// The status of the failed lookup.
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus>;
    /// The file object the request arrived on.
    fn file_object(&mut self) -> FileObjectState;
    /// `FLT_RELATED_OBJECTS.Transaction` is set: the file object is bound to a TxF transaction.
    fn transacted(&mut self) -> bool;
    /// `FILE_BASIC_INFORMATION.FileAttributes` (`FltQueryInformationFile`).
    ///
    /// # Errors
    /// The query's status.
    fn attributes(&mut self) -> Result<u32, NtStatus>;
    /// `FILE_STANDARD_INFORMATION` (`FltQueryInformationFile`).
    ///
    /// # Errors
    /// The query's status.
    fn standard(&mut self) -> Result<StandardInformation, NtStatus>;
    /// The requesting process's image path (`SeLocateProcessImageName`), queried at most once
    /// per request and held (then freed) by the source; `None` when it cannot be learnt.
    fn process_image(&mut self) -> Option<&[u16]>;
    /// The file's path from the volume root (`FltGetFileNameInformation`, opened name),
    /// queried at most once per request and released by the source; `None` when it cannot be
    /// learnt.
    fn file_path(&mut self) -> Option<&[u16]>;
    /// The answers of the two name queries made so far in this request (no query).
    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>);
}

/// How byte-range locks are learned. odxflt does not shadow lock state (docs/driver.md,
/// "Byte-range locks"): the file system applies the same MS-FSA §2.1.4.10 check under its own
/// locks, atomically with the transfer, and its `STATUS_FILE_LOCK_CONFLICT` passes through the
/// completion mapping unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockView {
    /// No lock state is visible to the filter: report no conflict and let the file system decide.
    FileSystemDecides,
}

/// The [`OffloadFacts`] of one request. `SHARE_SIZES`: the stream sizes are kept once asked,
/// because a size rule and the checks both ask and one query serves both; without rules only
/// the checks ask, once, and nothing is kept (`false`: the plain pre-operation).
#[derive(Debug)]
pub struct KernelFacts<S, const SHARE_SIZES: bool = true> {
    source: S,
    locks: LockView,
    /// The stream sizes once asked (with `SHARE_SIZES`).
    sizes: Option<Result<StreamSizes, NtStatus>>,
}

impl<S: KernelSource> KernelFacts<S> {
    /// Facts for one request, the stream sizes kept once asked.
    pub const fn new(source: S, locks: LockView) -> Self {
        Self {
            source,
            locks,
            sizes: None,
        }
    }
}

impl<S: KernelSource> KernelFacts<S, false> {
    /// Facts for one request that no rule governs: the stream sizes are asked once, by the
    /// checks, and not kept.
    pub const fn unshared(source: S, locks: LockView) -> Self {
        Self {
            source,
            locks,
            sizes: None,
        }
    }
}

impl<S: KernelSource, const SHARE_SIZES: bool> KernelFacts<S, SHARE_SIZES> {
    fn query_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        let standard = self.source.standard()?;
        let end_of_file = u64::try_from(standard.end_of_file).unwrap_or(0);
        // Valid data length is not a fact odxflt can know: there is no query class for it, and
        // the only place it could be read — the FCB header behind `FILE_OBJECT.FsContext` — may
        // belong to another driver and is read without the file system's locks. A wrong value
        // would not just move a trimming point: a read trimmed at it gets
        // `ALL_ZERO_BEYOND_CURRENT_RANGE`, which tells the copy engine the rest of the file is
        // zero (data loss at the destination). So the core sees VDL = EOF and never applies its
        // valid-data-length rules in the filter; NTFS applies MS-FSA read 14/15 and write 16
        // itself, under its own locks, and its answer (trim, zero token, flag) passes through.
        Ok(StreamSizes {
            end_of_file,
            valid_data_length: end_of_file,
            delete_pending: standard.delete_pending,
        })
    }

    /// The source (for tests and for releasing what it holds).
    pub fn into_source(self) -> S {
        self.source
    }
}

impl<S: KernelSource, const SHARE_SIZES: bool> OffloadFacts for KernelFacts<S, SHARE_SIZES> {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        self.source.volume()
    }

    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        let file_object = self.source.file_object();
        Ok(HandleFacts {
            closed: file_object.flags & FO_CLEANUP_COMPLETE != 0,
        })
    }

    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        let attributes = FileAttributes::from_bits_retain(self.source.attributes()?);
        let mut markers = StreamMarkers::empty();
        markers.set(StreamMarkers::TRANSACTED, self.source.transacted());
        Ok(StreamKind {
            attributes,
            markers,
        })
    }

    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        if !SHARE_SIZES {
            return self.query_sizes();
        }
        if let Some(known) = self.sizes {
            return known;
        }
        let sizes = self.query_sizes();
        self.sizes = Some(sizes);
        sizes
    }

    // Negative sizes do not occur on a sane file system; read them as zero (an empty file
    // ends every request at STATUS_END_OF_FILE).

    fn lock_conflict(&mut self, _range: ByteRange, _intent: LockIntent) -> Result<bool, NtStatus> {
        match self.locks {
            LockView::FileSystemDecides => Ok(false),
        }
    }

    fn process_image(&mut self) -> Option<&[u16]> {
        self.source.process_image()
    }

    fn file_path(&mut self) -> Option<&[u16]> {
        self.source.file_path()
    }

    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        self.source.known_names()
    }
}

#[cfg(test)]
mod tests {
    use odx_core::validate::{Check, OffloadRequest, decide};
    use odx_core::wire::{OffloadReadInput, OffloadReadOutput, WireStruct};
    use odx_core::{FactKind, OffloadOp, Rules};

    use super::*;

    /// A scripted kernel that counts what it was asked.
    #[derive(Debug, Default)]
    struct Script {
        volume: Option<VolumeFacts>,
        file_object: FileObjectState,
        transacted: bool,
        attributes: u32,
        standard: StandardInformation,
        asked: std::vec::Vec<FactKind>,
    }

    impl KernelSource for Script {
        fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
            self.asked.push(FactKind::Volume);
            self.volume.ok_or(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND)
        }
        fn file_object(&mut self) -> FileObjectState {
            self.asked.push(FactKind::Handle);
            self.file_object
        }
        fn transacted(&mut self) -> bool {
            self.transacted
        }
        fn attributes(&mut self) -> Result<u32, NtStatus> {
            self.asked.push(FactKind::StreamKind);
            Ok(self.attributes)
        }
        fn process_image(&mut self) -> Option<&[u16]> {
            None
        }
        fn file_path(&mut self) -> Option<&[u16]> {
            None
        }
        fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
            (None, None)
        }
        fn standard(&mut self) -> Result<StandardInformation, NtStatus> {
            self.asked.push(FactKind::StreamSizes);
            Ok(self.standard)
        }
    }

    fn plain_file() -> Script {
        Script {
            volume: Some(VolumeFacts::ntfs_default()),
            file_object: FileObjectState {
                read_access: true,
                write_access: true,
                flags: 0,
            },
            attributes: 0x20, // FILE_ATTRIBUTE_ARCHIVE
            standard: StandardInformation {
                end_of_file: 1 << 20,
                delete_pending: false,
            },
            ..Script::default()
        }
    }

    fn read(offset: u64, length: u64, script: Script) -> (Check, Script) {
        let input = OffloadReadInput::new(offset, length, 0);
        let mut bytes = [0_u8; 32];
        input.serialize_into(&mut bytes).unwrap();
        let mut facts = KernelFacts::new(script, LockView::FileSystemDecides);
        let request = OffloadRequest {
            input: &bytes,
            output_len: OffloadReadOutput::SIZE,
        };
        let decision = decide(OffloadOp::Read, request, &mut facts, &Rules::DOCUMENTED);
        (decision.check, facts.into_source())
    }

    #[test]
    fn a_misaligned_request_never_queries_the_file() {
        let (check, script) = read(100, 4096, plain_file());
        assert_eq!(check, Check::Alignment);
        assert_eq!(script.asked, [FactKind::Volume, FactKind::Handle]);
    }

    #[test]
    fn a_good_request_asks_each_source_once_in_the_core_order() {
        let (check, script) = read(0, 4096, plain_file());
        assert_eq!(check, Check::Forward);
        assert_eq!(
            script.asked,
            [
                FactKind::Volume,
                FactKind::Handle,
                FactKind::StreamKind,
                FactKind::StreamSizes
            ]
        );
    }

    #[test]
    fn file_object_fields_become_handle_facts() {
        let mut facts = KernelFacts::new(plain_file(), LockView::FileSystemDecides);
        let handle = facts.handle().unwrap();
        assert!(!handle.closed);
        let closed = Script {
            file_object: FileObjectState {
                read_access: true,
                write_access: false,
                flags: FO_CLEANUP_COMPLETE | 0x2,
            },
            ..plain_file()
        };
        let mut facts = KernelFacts::new(closed, LockView::FileSystemDecides);
        let handle = facts.handle().unwrap();
        assert!(handle.closed);
        assert_eq!(read(0, 4096, facts.into_source()).0, Check::HandleOpen);
    }

    #[test]
    fn the_share_access_bits_decide_nothing() {
        // FILE_OBJECT.ReadAccess/WriteAccess are share-access bookkeeping, and a kernel-mode
        // requestor's handle may have neither: odxflt forwards, the file system decides.
        let no_access = Script {
            file_object: FileObjectState {
                read_access: false,
                write_access: false,
                flags: 0,
            },
            ..plain_file()
        };
        assert_eq!(read(0, 4096, no_access).0, Check::Forward);
    }

    #[test]
    fn attributes_and_transaction_become_the_stream_kind() {
        // FILE_ATTRIBUTE_COMPRESSED with FILE_ATTRIBUTE_ARCHIVE kept alongside.
        let compressed = Script {
            attributes: 0x0820,
            ..plain_file()
        };
        let mut facts = KernelFacts::new(compressed, LockView::FileSystemDecides);
        let kind = facts.stream_kind().unwrap();
        assert!(kind.attributes.contains(FileAttributes::COMPRESSED));
        assert_eq!(kind.attributes.bits(), 0x0820);
        assert_eq!(read(0, 4096, facts.into_source()).0, Check::StreamKind);

        let transacted = Script {
            transacted: true,
            ..plain_file()
        };
        let mut facts = KernelFacts::new(transacted, LockView::FileSystemDecides);
        assert_eq!(
            facts.stream_kind().unwrap().markers,
            StreamMarkers::TRANSACTED
        );
        assert_eq!(read(0, 4096, facts.into_source()).0, Check::StreamKind);
    }

    #[test]
    fn sizes_come_from_standard_information_and_vdl_is_never_a_filter_fact() {
        let script = Script {
            standard: StandardInformation {
                end_of_file: 8192,
                delete_pending: true,
            },
            ..plain_file()
        };
        let mut facts = KernelFacts::new(script, LockView::FileSystemDecides);
        let sizes = facts.stream_sizes().unwrap();
        assert_eq!(
            sizes,
            StreamSizes {
                end_of_file: 8192,
                valid_data_length: 8192,
                delete_pending: true
            }
        );
        let negative = Script {
            standard: StandardInformation {
                end_of_file: -1,
                delete_pending: false,
            },
            ..plain_file()
        };
        let mut facts = KernelFacts::new(negative, LockView::FileSystemDecides);
        let sizes = facts.stream_sizes().unwrap();
        assert_eq!((sizes.end_of_file, sizes.valid_data_length), (0, 0));
    }

    /// The data-loss case the review found: whatever the file's real valid data length, a read
    /// that spans it is forwarded whole (NTFS trims it and sets the zero flag under its locks);
    /// odxflt neither trims it nor claims that anything beyond is zero.
    #[test]
    fn a_read_spanning_any_vdl_is_forwarded_whole() {
        use odx_core::verdict::{OffloadVerdict, Verdict};
        let input = OffloadReadInput::new(0, 65536, 0);
        let mut bytes = [0_u8; 32];
        input.serialize_into(&mut bytes).unwrap();
        let mut facts = KernelFacts::new(plain_file(), LockView::FileSystemDecides);
        let request = OffloadRequest {
            input: &bytes,
            output_len: OffloadReadOutput::SIZE,
        };
        let decision = decide(OffloadOp::Read, request, &mut facts, &Rules::DOCUMENTED);
        let OffloadVerdict::Read(Verdict::Forward(forward)) = decision.verdict else {
            panic!("{decision:?}");
        };
        assert!(!forward.trimmed());
        assert!(!forward.context.zero_beyond_forwarded);
        assert_eq!(forward.copy_length(), 65536);
    }

    #[test]
    fn a_missing_volume_context_passes_the_request_through() {
        let script = Script {
            volume: None,
            ..plain_file()
        };
        let (check, script) = read(0, 4096, script);
        assert_eq!(check, Check::FactUnavailable(FactKind::Volume));
        assert_eq!(script.asked, [FactKind::Volume]);
    }

    #[test]
    fn locks_are_left_to_the_file_system() {
        let mut facts = KernelFacts::new(plain_file(), LockView::FileSystemDecides);
        for intent in [LockIntent::Shared, LockIntent::Exclusive] {
            assert_eq!(
                facts.lock_conflict(ByteRange::new(0, 4096), intent),
                Ok(false)
            );
        }
    }
}
