//! odxflt as the simulator runs it: the same sequence the driver performs in its
//! `IRP_MJ_FILE_SYSTEM_CONTROL` callbacks —
//!
//! 1. pre-operation: policy, then facts on demand ([`ModelFacts`], the simulator's answer to
//!    `OffloadFacts`) and `odx_core::validate::decide`;
//! 2. `Complete` → the output is in the system buffer, the request completes
//!    (`FLT_PREOP_COMPLETE`); `Forward` → the (possibly trimmed) input is in the buffer and the
//!    request goes down with a completion context (`FLT_PREOP_SUCCESS_WITH_CALLBACK`);
//!    `PassThrough` (a fact query failed) → the request goes down untouched without one
//!    (`FLT_PREOP_SUCCESS_NO_CALLBACK`);
//! 3. post-operation: the storage's refusal starts the volume's back-off
//!    (`odx_core::storage::StorageState::learn`), then the completion mapping
//!    (`odx_core::complete`).
//!
//! The volume fact's `OFFLOAD_{READ,WRITE}_SUPPORTED` bits are odxflt's own: what the storage
//! state built at instance setup allows now (`StorageState::offload_flags`), never NTFS's
//! sticky `IsOffload*Supported`, which the driver cannot see.
//!
//! Both callbacks are odx-core's `filter::{pre_operation_in, post_operation}`, the same
//! functions the driver calls, with the governance rules and the decision journal; this module
//! only supplies the facts, including the two names a rule or the journal may ask for (the
//! requesting process's image and the file's path). Nothing here matches a rule or writes a
//! record.

use odx_core::filter::{self, LowerAnswer};
pub use odx_core::filter::{BufferedRequest, PreEnv, StorageAt};
pub use odx_core::filter::{PostContext, PreOp};
use odx_core::governance::JournalSeq;
use odx_core::lock::{OpenId, range_conflicts};
use odx_core::stats::VolumeStats;
use odx_core::{
    ByteRange, FactKind, HandleFacts, LockIntent, NtStatus, OffloadFacts, Rules, StreamKind,
    StreamSizes, VolumeFacts,
};

use crate::volume::FileEntry;

/// How many times each fact was asked for during one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FactCounts {
    /// [`FactKind::Volume`].
    pub volume: u32,
    /// [`FactKind::Handle`].
    pub handle: u32,
    /// [`FactKind::StreamKind`].
    pub stream_kind: u32,
    /// [`FactKind::StreamSizes`].
    pub stream_sizes: u32,
    /// [`FactKind::Locks`].
    pub locks: u32,
    /// `OffloadFacts::process_image` calls (a rule naming a process, the journal's names).
    pub process_image: u32,
    /// `OffloadFacts::file_path` calls (a rule naming a path or an extension, the journal's
    /// names).
    pub file_path: u32,
    /// Name queries the kernel makes for these calls when each name is cached for the rest of
    /// the request (the first call for each name; at most 2).
    pub name_queries: u32,
}

impl FactCounts {
    /// The count for one kind.
    #[must_use]
    pub const fn get(&self, kind: FactKind) -> u32 {
        match kind {
            FactKind::Volume => self.volume,
            FactKind::Handle => self.handle,
            FactKind::StreamKind => self.stream_kind,
            FactKind::StreamSizes => self.stream_sizes,
            FactKind::Locks => self.locks,
        }
    }

    fn bump(&mut self, kind: FactKind) {
        let slot = match kind {
            FactKind::Volume => &mut self.volume,
            FactKind::Handle => &mut self.handle,
            FactKind::StreamKind => &mut self.stream_kind,
            FactKind::StreamSizes => &mut self.stream_sizes,
            FactKind::Locks => &mut self.locks,
        };
        *slot = slot.saturating_add(1);
    }

    /// Total file-system fact queries (the five [`FactKind`]s; name queries are counted apart,
    /// in [`Self::name_queries`]).
    #[must_use]
    pub const fn total(&self) -> u32 {
        self.volume + self.handle + self.stream_kind + self.stream_sizes + self.locks
    }
}

/// The handle (file object) a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleState {
    /// The file.
    pub file: crate::store::FileId,
    /// Granted access: the I/O manager checks it for user-mode requestors (odxflt does not look
    /// at it).
    pub granted: odx_core::flags::AccessMask,
    /// Lock owner identity of this open.
    pub open: OpenId,
    /// Lock key used for I/O through this handle.
    pub key: u32,
    /// Cleanup has run.
    pub closed: bool,
}

/// `OffloadFacts` answered from the model, counting each query.
#[derive(Debug)]
pub struct ModelFacts<'a> {
    /// Volume facts (cached per volume in the driver).
    pub volume: VolumeFacts,
    /// The file the handle opens.
    pub file: &'a FileEntry,
    /// The handle.
    pub handle: HandleState,
    /// The requesting process's image as the kernel hands it (a full path,
    /// `\\Device\\HarddiskVolume1\\Windows\\System32\\copy.exe`); empty: the query fails.
    pub process: &'a [u16],
    /// Query counts.
    pub counts: FactCounts,
    /// Whether the asker sees the file's valid data length: NTFS does (its own state); odxflt
    /// does not (the driver has no safe source for it, `odxflt::facts`), so to the filter model
    /// valid data length is end of file, as it is to the driver.
    pub vdl_visible: bool,
}

/// A name as a query answers it: empty means the query fails.
const fn answered(name: &[u16]) -> Option<&[u16]> {
    if name.is_empty() { None } else { Some(name) }
}

impl OffloadFacts for ModelFacts<'_> {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        self.counts.bump(FactKind::Volume);
        Ok(self.volume)
    }

    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        self.counts.bump(FactKind::Handle);
        Ok(HandleFacts {
            closed: self.handle.closed,
        })
    }

    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        self.counts.bump(FactKind::StreamKind);
        Ok(StreamKind {
            attributes: self.file.attributes,
            markers: self.file.markers,
        })
    }

    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        self.counts.bump(FactKind::StreamSizes);
        Ok(StreamSizes {
            end_of_file: self.file.end_of_file,
            valid_data_length: if self.vdl_visible {
                self.file.valid_data_length
            } else {
                self.file.end_of_file
            },
            delete_pending: self.file.delete_pending,
        })
    }

    fn lock_conflict(&mut self, range: ByteRange, intent: LockIntent) -> Result<bool, NtStatus> {
        self.counts.bump(FactKind::Locks);
        Ok(range_conflicts(
            &self.file.locks,
            range,
            intent,
            self.handle.open,
            self.handle.key,
        ))
    }

    fn process_image(&mut self) -> Option<&[u16]> {
        if self.counts.process_image == 0 {
            self.counts.name_queries = self.counts.name_queries.saturating_add(1);
        }
        self.counts.process_image = self.counts.process_image.saturating_add(1);
        answered(self.process)
    }

    fn file_path(&mut self) -> Option<&[u16]> {
        if self.counts.file_path == 0 {
            self.counts.name_queries = self.counts.name_queries.saturating_add(1);
        }
        self.counts.file_path = self.counts.file_path.saturating_add(1);
        answered(&self.file.path)
    }

    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        let process = if self.counts.process_image > 0 {
            answered(self.process)
        } else {
            None
        };
        let path = if self.counts.file_path > 0 {
            answered(&self.file.path)
        } else {
            None
        };
        (process, path)
    }
}

/// odxflt's pre-operation callback: exactly `odx_core::filter::pre_operation_in`, the function
/// the driver calls, over the simulator's METHOD_BUFFERED system buffer.
pub fn pre_operation<F: OffloadFacts + ?Sized>(
    request: BufferedRequest<'_>,
    facts: &mut F,
    env: &PreEnv<'_>,
) -> PreOp {
    filter::pre_operation_in(request, facts, env)
}

/// odxflt's post-operation callback: exactly `odx_core::filter::post_operation`, learning from the
/// storage's answer into the volume's `StorageState` (`storage`) and completing the request's
/// journal record (`journal`). Returns the final status and `IoStatus.Information`; the output
/// (if any) is rewritten into `buffer`.
#[allow(clippy::too_many_arguments)]
pub fn post_operation(
    context: &PostContext,
    below: NtStatus,
    buffer: &mut [u8],
    information: usize,
    output_len: usize,
    rules: &Rules,
    stats: &VolumeStats,
    storage: StorageAt<'_>,
    journal: Option<JournalSeq<'_>>,
) -> (NtStatus, usize) {
    let answer = LowerAnswer {
        status: below,
        information,
        buffer,
        output_len,
    };
    filter::post_operation(context, answer, rules, Some(stats), Some(storage), journal)
}
