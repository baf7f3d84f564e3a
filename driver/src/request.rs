//! From `FLT_PARAMETERS.FileSystemControl` to the core's request: which control codes odxflt
//! handles, and the two views (input, output) of the one METHOD_BUFFERED system buffer.

use odx_core::filter::{BufferedRequest, LowerAnswer};
use odx_core::validate::OffloadRequest;
use odx_core::{NtStatus, OffloadOp};

use crate::registration::{IRP_MN_KERNEL_CALL, IRP_MN_USER_FS_REQUEST};

/// The values the pre-operation callback reads from `FLT_IO_PARAMETER_BLOCK` before it decides
/// whether the request is one of odxflt's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsControl {
    /// `MinorFunction`: only user and kernel FS requests carry a control code (mount and verify
    /// requests overlay other parameters on the same bytes).
    pub minor_function: u8,
    /// `Parameters.FileSystemControl.Common.FsControlCode`.
    pub code: u32,
}

impl FsControl {
    /// The offload operation, or `None` for every other request ("no callback").
    #[must_use]
    pub const fn offload_op(self) -> Option<OffloadOp> {
        match self.minor_function {
            IRP_MN_USER_FS_REQUEST | IRP_MN_KERNEL_CALL => OffloadOp::from_fsctl(self.code),
            _ => None,
        }
    }
}

/// A METHOD_BUFFERED system buffer: `max(InputBufferLength, OutputBufferLength)` bytes that hold
/// the input on the way down and the output on the way up (the output overlays the input).
#[derive(Debug)]
pub struct SystemBuffer<'a> {
    bytes: &'a mut [u8],
    input_len: usize,
    output_len: usize,
}

impl<'a> SystemBuffer<'a> {
    /// The number of bytes the I/O manager allocated for lengths `input_len` and `output_len`.
    #[must_use]
    pub fn allocation(input_len: u32, output_len: u32) -> usize {
        usize::try_from(input_len.max(output_len)).unwrap_or(0)
    }

    /// A view of `bytes` (which must be the whole allocation) for the two lengths. Lengths that
    /// do not fit in the allocation are cut to it, so no view ever reaches past the buffer.
    #[must_use]
    pub fn new(bytes: &'a mut [u8], input_len: u32, output_len: u32) -> Self {
        let fit = |len: u32| usize::try_from(len).map_or(0, |len| len.min(bytes.len()));
        let (input_len, output_len) = (fit(input_len), fit(output_len));
        Self {
            bytes,
            input_len,
            output_len,
        }
    }

    /// A request without a buffer (`SystemBuffer` was NULL): both views are empty.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            bytes: &mut [],
            input_len: 0,
            output_len: 0,
        }
    }

    /// The input bytes (`InputBufferLength`).
    #[must_use]
    pub fn input(&self) -> &[u8] {
        self.bytes.get(..self.input_len).unwrap_or_default()
    }

    /// The input bytes, writable (to forward a trimmed `CopyLength`).
    pub fn input_mut(&mut self) -> &mut [u8] {
        self.bytes.get_mut(..self.input_len).unwrap_or_default()
    }

    /// `OutputBufferLength`.
    #[must_use]
    pub const fn output_len(&self) -> usize {
        self.output_len
    }

    /// The first `information` bytes of output (what the layer below returned), never more than
    /// `OutputBufferLength`.
    #[must_use]
    pub fn returned(&self, information: usize) -> &[u8] {
        self.bytes
            .get(..information.min(self.output_len))
            .unwrap_or_default()
    }

    /// The output bytes (`OutputBufferLength`), writable.
    pub fn output_mut(&mut self) -> &mut [u8] {
        self.bytes.get_mut(..self.output_len).unwrap_or_default()
    }

    /// The core's view of the request.
    #[must_use]
    pub fn request(&self) -> OffloadRequest<'_> {
        OffloadRequest {
            input: self.input(),
            output_len: self.output_len,
        }
    }

    /// The core filter's view of the buffered request (`odx_core::filter`).
    pub fn buffered(&mut self, op: OffloadOp) -> BufferedRequest<'_> {
        BufferedRequest {
            op,
            buffer: &mut *self.bytes,
            input_len: self.input_len,
            output_len: self.output_len,
        }
    }

    /// The answer from below as the core filter's post-operation reads it.
    pub fn answer(&mut self, status: NtStatus, information: usize) -> LowerAnswer<'_> {
        LowerAnswer {
            status,
            information,
            buffer: &mut *self.bytes,
            output_len: self.output_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use odx_core::{FSCTL_OFFLOAD_READ, FSCTL_OFFLOAD_WRITE};

    use super::*;

    #[test]
    fn only_the_two_offload_codes_on_fs_request_minors_are_handled() {
        let handled = |minor, code| {
            FsControl {
                minor_function: minor,
                code,
            }
            .offload_op()
        };
        assert_eq!(
            handled(IRP_MN_USER_FS_REQUEST, FSCTL_OFFLOAD_READ),
            Some(OffloadOp::Read)
        );
        assert_eq!(
            handled(IRP_MN_KERNEL_CALL, FSCTL_OFFLOAD_WRITE),
            Some(OffloadOp::Write)
        );
        // FSCTL_SET_SPARSE, FSCTL_GET_RETRIEVAL_POINTERS, FSCTL_DUPLICATE_EXTENTS_TO_FILE.
        for code in [0x0009_00C4, 0x0009_0073, 0x0009_8344] {
            assert_eq!(handled(IRP_MN_USER_FS_REQUEST, code), None);
        }
        // IRP_MN_MOUNT_VOLUME (1), IRP_MN_VERIFY_VOLUME (2), IRP_MN_LOAD_FILE_SYSTEM (3): the
        // "code" bytes there are part of a pointer and must not be read as a control code.
        for minor in [1, 2, 3] {
            assert_eq!(handled(minor, FSCTL_OFFLOAD_READ), None);
        }
    }

    #[test]
    fn views_never_reach_past_the_allocation() {
        let mut bytes = [0_u8; 64];
        let buffer = SystemBuffer::new(&mut bytes, 32, 528);
        assert_eq!(buffer.input().len(), 32);
        assert_eq!(buffer.output_len(), 64);
        assert_eq!(buffer.returned(1000).len(), 64);
        assert_eq!(buffer.returned(16).len(), 16);
    }

    #[test]
    fn allocation_is_the_larger_length() {
        assert_eq!(SystemBuffer::allocation(32, 528), 528);
        assert_eq!(SystemBuffer::allocation(544, 16), 544);
        assert_eq!(SystemBuffer::allocation(0, 0), 0);
    }

    #[test]
    fn the_core_sees_input_length_and_output_length() {
        let mut bytes = [7_u8; 544];
        let buffer = SystemBuffer::new(&mut bytes, 544, 16);
        let request = buffer.request();
        assert_eq!(request.input.len(), 544);
        assert_eq!(request.output_len, 16);
        let empty = SystemBuffer::empty();
        assert_eq!(empty.request().input.len(), 0);
        assert_eq!(empty.request().output_len, 0);
    }
}
