//! Control codes, computed the way the SDK's `CTL_CODE` macro does and pinned to the documented
//! values (bindgen cannot see `CTL_CODE`, so these are typed constants rather than generated ones).

/// `FILE_DEVICE_FILE_SYSTEM`.
pub const FILE_DEVICE_FILE_SYSTEM: u32 = 0x0000_0009;
/// `FILE_DEVICE_MASS_STORAGE` (`IOCTL_STORAGE_BASE`).
pub const FILE_DEVICE_MASS_STORAGE: u32 = 0x0000_002d;
/// `METHOD_BUFFERED`: one system buffer serves input and output.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_ANY_ACCESS`.
pub const FILE_ANY_ACCESS: u32 = 0;
/// `FILE_READ_ACCESS` (equals `FILE_READ_DATA`).
pub const FILE_READ_ACCESS: u32 = 0x0001;
/// `FILE_WRITE_ACCESS` (equals `FILE_WRITE_DATA`).
pub const FILE_WRITE_ACCESS: u32 = 0x0002;

/// `CTL_CODE(DeviceType, Function, Method, Access)`.
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// `FSCTL_OFFLOAD_READ` = 0x00094264.
pub const FSCTL_OFFLOAD_READ: u32 = ctl_code(
    FILE_DEVICE_FILE_SYSTEM,
    153,
    METHOD_BUFFERED,
    FILE_READ_ACCESS,
);
/// `FSCTL_OFFLOAD_WRITE` = 0x00098268.
pub const FSCTL_OFFLOAD_WRITE: u32 = ctl_code(
    FILE_DEVICE_FILE_SYSTEM,
    154,
    METHOD_BUFFERED,
    FILE_WRITE_ACCESS,
);
/// `IOCTL_STORAGE_MANAGE_DATA_SET_ATTRIBUTES` = 0x002D9404: what the file system sends below.
pub const IOCTL_STORAGE_MANAGE_DATA_SET_ATTRIBUTES: u32 = ctl_code(
    FILE_DEVICE_MASS_STORAGE,
    0x0501,
    METHOD_BUFFERED,
    FILE_WRITE_ACCESS,
);

static_assertions::const_assert_eq!(FSCTL_OFFLOAD_READ, 0x0009_4264);
static_assertions::const_assert_eq!(FSCTL_OFFLOAD_WRITE, 0x0009_8268);
static_assertions::const_assert_eq!(IOCTL_STORAGE_MANAGE_DATA_SET_ATTRIBUTES, 0x002D_9404);

/// `DeviceDsmAction_OffloadRead` (non-destructive flag included).
pub const DEVICE_DSM_ACTION_OFFLOAD_READ: u32 = 0x8000_0003;
/// `DeviceDsmAction_OffloadWrite`.
pub const DEVICE_DSM_ACTION_OFFLOAD_WRITE: u32 = 0x0000_0004;

/// The two operations odxflt governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffloadOp {
    /// `FSCTL_OFFLOAD_READ`: produce a token for a source range.
    Read,
    /// `FSCTL_OFFLOAD_WRITE`: materialise a token's data in a destination range.
    Write,
}

impl OffloadOp {
    /// Classifies a file-system control code. Every code other than the two offload FSCTLs is
    /// `None`, which the driver turns into "no callback".
    #[must_use]
    pub const fn from_fsctl(code: u32) -> Option<Self> {
        match code {
            FSCTL_OFFLOAD_READ => Some(Self::Read),
            FSCTL_OFFLOAD_WRITE => Some(Self::Write),
            _ => None,
        }
    }

    /// The control code of this operation.
    #[must_use]
    pub const fn fsctl(self) -> u32 {
        match self {
            Self::Read => FSCTL_OFFLOAD_READ,
            Self::Write => FSCTL_OFFLOAD_WRITE,
        }
    }

    /// The access bits the control code itself demands of the handle (`(code >> 14) & 3`).
    #[must_use]
    pub const fn required_access_bits(self) -> u32 {
        (self.fsctl() >> 14) & 3
    }

    /// Symbolic name of the control code.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Read => "FSCTL_OFFLOAD_READ",
            Self::Write => "FSCTL_OFFLOAD_WRITE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsctl_values_match_the_sdk_header() {
        assert_eq!(FSCTL_OFFLOAD_READ, 606_820);
        assert_eq!(FSCTL_OFFLOAD_WRITE, 623_208);
        assert_eq!(OffloadOp::Read.required_access_bits(), FILE_READ_ACCESS);
        assert_eq!(OffloadOp::Write.required_access_bits(), FILE_WRITE_ACCESS);
    }

    #[test]
    fn only_the_two_offload_codes_are_classified() {
        assert_eq!(OffloadOp::from_fsctl(0x0009_4264), Some(OffloadOp::Read));
        assert_eq!(OffloadOp::from_fsctl(0x0009_8268), Some(OffloadOp::Write));
        // FSCTL_SET_SPARSE, FSCTL_GET_RETRIEVAL_POINTERS and a neighbour of each offload code.
        for code in [0x0009_00C4, 0x0009_0073, 0x0009_4260, 0x0009_826C, 0] {
            assert_eq!(OffloadOp::from_fsctl(code), None, "{code:#x}");
        }
    }
}
