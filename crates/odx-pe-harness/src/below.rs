//! The file system and storage below odxflt.sys, for every request that reaches them: what the
//! binary forwarded (validated, perhaps trimmed), what it sent down untouched (the valid-data-
//! length rule it leaves to NTFS, monitor mode), and what it passed through without a callback
//! (a failed fact query, raised IRQL, an instance being torn down, a volume it did not attach
//! to). NTFS applies its own MS-FSA checks to all of them, under its own locks; the model is
//! the simulator's ([`odx_sim::ntfs::validate_then_execute`]: the core's `decide` over NTFS's
//! own view of the file, the valid-data-length rule, then the volume's data path), the same
//! function the simulated stack calls, so the two sides never model NTFS differently.

use odx_core::{OffloadOp, Rules};
use odx_sim::odxflt::HandleState;
use odx_sim::volume::BelowAnswer;
use odx_sim::{DataStore, Volume};

/// NTFS (or the file system mounted) and the storage, answering a request that reached them.
/// `buffer` is the system buffer; its first `input_len` bytes are the input as it arrives.
pub fn file_system_below<S: DataStore>(
    volume: &mut Volume<S>,
    handle: HandleState,
    op: OffloadOp,
    buffer: &mut [u8],
    input_len: usize,
    output_len: usize,
) -> BelowAnswer {
    odx_sim::ntfs::validate_then_execute(
        volume,
        op,
        handle,
        buffer,
        input_len,
        output_len,
        &Rules::DOCUMENTED,
    )
}
