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

/// The bits in which `FSCTL_OFFLOAD_READ` and `FSCTL_OFFLOAD_WRITE` agree: everything but the
/// low two bits of the function number (153 vs 154) and the access field (read vs write).
pub const OFFLOAD_COMMON_MASK: u32 = !(FSCTL_OFFLOAD_READ ^ FSCTL_OFFLOAD_WRITE);
/// The value of [`OFFLOAD_COMMON_MASK`]'s bits in both offload codes: device type
/// `FILE_DEVICE_FILE_SYSTEM`, `METHOD_BUFFERED`, the function's high bits.
pub const OFFLOAD_COMMON_BITS: u32 = FSCTL_OFFLOAD_READ & OFFLOAD_COMMON_MASK;

static_assertions::const_assert_eq!(OFFLOAD_COMMON_MASK, 0xFFFF_3FF3);
static_assertions::const_assert_eq!(OFFLOAD_COMMON_BITS, 0x0009_0260);
static_assertions::const_assert_eq!(
    FSCTL_OFFLOAD_WRITE & OFFLOAD_COMMON_MASK,
    OFFLOAD_COMMON_BITS
);

static_assertions::const_assert!(FSCTL_OFFLOAD_READ < FSCTL_OFFLOAD_WRITE);

/// `DeviceDsmAction_OffloadRead` (non-destructive flag included).
pub const DEVICE_DSM_ACTION_OFFLOAD_READ: u32 = 0x8000_0003;
/// `DeviceDsmAction_OffloadWrite`.
pub const DEVICE_DSM_ACTION_OFFLOAD_WRITE: u32 = 0x0000_0004;

/// The two operations odxflt governs.
///
/// `repr(u32)`: an `Option<OffloadOp>` that is materialised (stored, returned in a register) is
/// then a full 32-bit register write, not a partial `%al` write that merges with the register's
/// previous value; criterion's `from_fsctl_other_code` loop went from 2.1 to 0.56 ns with it
/// (docs/performance.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum OffloadOp {
    /// `FSCTL_OFFLOAD_READ`: produce a token for a source range.
    Read,
    /// `FSCTL_OFFLOAD_WRITE`: materialise a token's data in a destination range.
    Write,
}

impl OffloadOp {
    /// Classifies a file-system control code. Every code other than the two offload FSCTLs is
    /// `None`, which the driver turns into "no callback".
    ///
    /// Almost every code a filter sees is not an offload code, and almost every one of those is
    /// below `FSCTL_OFFLOAD_READ`: all `FILE_ANY_ACCESS` file-system codes (the oplock requests,
    /// reparse points, retrieval pointers, `FSCTL_SET_SPARSE`, …) and the `FILE_READ_ACCESS`
    /// ones with a lower function number (`FSCTL_QUERY_ALLOCATED_RANGES`, …). Those leave after
    /// one unsigned compare of the code where it lies. The rest (write-access codes, other
    /// device types) meet two exact compares, out of line.
    #[must_use]
    #[inline]
    pub const fn from_fsctl(code: u32) -> Option<Self> {
        if code < FSCTL_OFFLOAD_READ {
            return None;
        }
        Self::from_candidate(code)
    }

    /// The second half of [`Self::from_fsctl`], for a code at or above `FSCTL_OFFLOAD_READ`.
    /// Out of line, so the first compare stays one instruction and a branch in every caller,
    /// and the compiler does not fold both halves into one branch-free sequence (13
    /// instructions for every code, measured).
    #[inline(never)]
    const fn from_candidate(code: u32) -> Option<Self> {
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
        // Every code that shares the common bits (the 16 combinations of the two bit pairs in
        // which the offload codes differ), and every code one bit away from an offload code.
        for differing in 0..16_u32 {
            let code =
                OFFLOAD_COMMON_BITS | ((differing & 3) << 2) | (((differing >> 2) & 3) << 14);
            let expected = match code {
                FSCTL_OFFLOAD_READ => Some(OffloadOp::Read),
                FSCTL_OFFLOAD_WRITE => Some(OffloadOp::Write),
                _ => None,
            };
            assert_eq!(OffloadOp::from_fsctl(code), expected, "{code:#x}");
        }
        // Every file-system control code (device type 9, all functions, methods and accesses),
        // every code around the two, and the extremes.
        let exact = |code| match code {
            FSCTL_OFFLOAD_READ => Some(OffloadOp::Read),
            FSCTL_OFFLOAD_WRITE => Some(OffloadOp::Write),
            _ => None,
        };
        for code in (0x0009_0000..=0x0009_FFFF).chain([0, u32::MAX, 0x0009_4263, 0x0009_8269]) {
            assert_eq!(OffloadOp::from_fsctl(code), exact(code), "{code:#x}");
        }
        for bit in 0..32 {
            for base in [FSCTL_OFFLOAD_READ, FSCTL_OFFLOAD_WRITE] {
                assert_eq!(
                    OffloadOp::from_fsctl(base ^ (1 << bit)),
                    None,
                    "{base:#x} ^ bit {bit}"
                );
            }
        }
    }
}
