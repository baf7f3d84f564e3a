//! What odxflt registers with Filter Manager, as plain data. `ffi::registration` turns these
//! tables into `FLT_REGISTRATION`; the host tests pin them (and compare them with the INF).

/// `IRP_MJ_FILE_SYSTEM_CONTROL` (wdm.h).
pub const IRP_MJ_FILE_SYSTEM_CONTROL: u8 = 0x0D;
/// `IRP_MJ_LOCK_CONTROL` (wdm.h); named only so the test can say it is absent.
pub const IRP_MJ_LOCK_CONTROL: u8 = 0x11;
/// `IRP_MN_USER_FS_REQUEST`: an FSCTL from `NtFsControlFile`.
pub const IRP_MN_USER_FS_REQUEST: u8 = 0x00;
/// `IRP_MN_KERNEL_CALL`: an FSCTL issued from kernel mode (`FltFsControlFile`, `ZwFsControlFile`).
pub const IRP_MN_KERNEL_CALL: u8 = 0x04;

/// The service name (INF `ServiceName`, `fltmc load odxflt`).
pub const SERVICE_NAME: &str = "odxflt";
/// The altitude declared in the INF (FSFilter Activity Monitor group, 360000–389999; see
/// docs/driver.md for why this group).
pub const ALTITUDE: &str = "370031";
/// The load-order group that matches [`ALTITUDE`].
pub const LOAD_ORDER_GROUP: &str = "FSFilter Activity Monitor";
/// `SUPPORTED_FS_FEATURES_OFFLOAD_READ | SUPPORTED_FS_FEATURES_OFFLOAD_WRITE`: what the INF
/// declares, so that attaching odxflt never disables ODX by itself.
pub const SUPPORTED_FEATURES: u32 = odx_core::flags::SupportedFeatures::ODXFLT.bits();

/// Pool tag of everything odxflt allocates ("OdxF" in pool tag tools).
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"OdxF");

/// One row of the operation registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// `IRP_MJ_*`.
    pub major_function: u8,
    /// A pre-operation callback is registered.
    pub pre: bool,
    /// A post-operation callback is registered.
    pub post: bool,
}

/// The operations odxflt registers for. Only `IRP_MJ_FILE_SYSTEM_CONTROL`: byte-range locks are
/// not shadowed (the file system checks them itself; docs/driver.md), so `IRP_MJ_LOCK_CONTROL`
/// is not needed.
pub const OPERATIONS: &[Operation] = &[Operation {
    major_function: IRP_MJ_FILE_SYSTEM_CONTROL,
    pre: true,
    post: true,
}];

/// The context types odxflt uses: `FLT_INSTANCE_CONTEXT` only (one context per instance, so two
/// instances on one volume never share state; `ffi::context`).
pub const FLT_INSTANCE_CONTEXT: u16 = 0x0002;

crate::pin_constant!(
    FLT_INSTANCE_CONTEXT => "FLT_INSTANCE_CONTEXT",
    IRP_MJ_LOCK_CONTROL => "IRP_MJ_LOCK_CONTROL",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_file_system_control_is_registered() {
        assert_eq!(OPERATIONS.len(), 1);
        let op = OPERATIONS.first().copied();
        assert_eq!(
            op,
            Some(Operation {
                major_function: IRP_MJ_FILE_SYSTEM_CONTROL,
                pre: true,
                post: true
            })
        );
        assert!(
            OPERATIONS
                .iter()
                .all(|o| o.major_function != IRP_MJ_LOCK_CONTROL)
        );
    }

    #[test]
    fn declared_features_are_exactly_both_offload_bits() {
        assert_eq!(SUPPORTED_FEATURES, 0x3);
    }

    #[test]
    fn altitude_lies_in_the_group_range() {
        let altitude: u32 = ALTITUDE.parse().unwrap();
        assert!((360_000..=389_999).contains(&altitude));
        assert_eq!(LOAD_ORDER_GROUP, "FSFilter Activity Monitor");
    }

    #[test]
    fn pool_tag_reads_odxf_in_memory_order() {
        assert_eq!(POOL_TAG.to_le_bytes(), *b"OdxF");
    }
}
