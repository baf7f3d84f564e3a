//! What Windows checks before any filter sees an offload FSCTL (odx-spec §4.4, §5.1–5.2). odxflt
//! never runs this; the simulator does, to model the stack faithfully, and `odxctl diagnose`
//! uses it to name the filter that blocks offload.

use crate::ctl::OffloadOp;
use crate::flags::{AccessMask, SupportedFeatures};
use crate::status::NtStatus;

/// `PreviousMode` of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestorMode {
    /// `NtFsControlFile` from user mode: the handle's access is checked.
    User,
    /// `ZwFsControlFile` / `FltFsControlFile` from kernel mode: no access check.
    Kernel,
}

/// `HKLM\SYSTEM\CurrentControlSet\Control\FileSystem\FilterSupportedFeaturesMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FilterSupportedFeaturesMode {
    /// 0: normal opt-in processing.
    #[default]
    Normal,
    /// 1: filters never opt in, as if each attached filter declared 0.
    NeverOptIn,
}

impl FilterSupportedFeaturesMode {
    /// From the registry value: 1 is "never opt in"; 0 and values Windows does not define are
    /// normal processing.
    #[must_use]
    pub const fn from_registry(value: u32) -> Self {
        if value == 1 {
            Self::NeverOptIn
        } else {
            Self::Normal
        }
    }

    /// The registry value.
    #[must_use]
    pub const fn registry_value(self) -> u32 {
        match self {
            Self::Normal => 0,
            Self::NeverOptIn => 1,
        }
    }
}

/// `FsRtlGetSupportedFeatures` for a volume stack: a bit is set only if every attached filter
/// (minifilter or legacy) declares it. A stack without filters supports everything; whether mode 1
/// also blocks such a stack is unconfirmed (odx-spec §5.1), and this model says it does not.
pub fn aggregate_supported_features(
    filters: impl IntoIterator<Item = SupportedFeatures>,
    mode: FilterSupportedFeaturesMode,
) -> SupportedFeatures {
    filters
        .into_iter()
        .fold(SupportedFeatures::all(), |acc, declared| match mode {
            FilterSupportedFeaturesMode::Normal => acc & declared,
            FilterSupportedFeaturesMode::NeverOptIn => SupportedFeatures::empty(),
        })
}

/// The feature bit an operation needs from every filter.
#[must_use]
pub const fn required_feature(op: OffloadOp) -> SupportedFeatures {
    match op {
        OffloadOp::Read => SupportedFeatures::OFFLOAD_READ,
        OffloadOp::Write => SupportedFeatures::OFFLOAD_WRITE,
    }
}

/// The status with which the stack refuses `op` when a filter has not opted in.
#[must_use]
pub const fn filter_not_supported(op: OffloadOp) -> NtStatus {
    match op {
        OffloadOp::Read => NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED,
        OffloadOp::Write => NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
    }
}

/// `IopXxxControlFile`'s checks, in its order: the handle's access for user-mode callers, then
/// the volume stack's opt-in.
///
/// # Errors
/// `STATUS_ACCESS_DENIED`, or `STATUS_OFFLOAD_{READ,WRITE}_FLT_NOT_SUPPORTED`.
pub fn io_manager_precheck(
    op: OffloadOp,
    requestor: RequestorMode,
    granted: AccessMask,
    stack: SupportedFeatures,
) -> Result<(), NtStatus> {
    if requestor == RequestorMode::User && (op.required_access_bits() & !granted.bits()) != 0 {
        return Err(NtStatus::STATUS_ACCESS_DENIED);
    }
    if !stack.contains(required_feature(op)) {
        return Err(filter_not_supported(op));
    }
    Ok(())
}
