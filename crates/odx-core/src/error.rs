//! Errors of the core's parsers and lookups. Validation never returns these: it turns them into
//! the documented NTSTATUS (a short buffer is `STATUS_BUFFER_TOO_SMALL`, and so on).

/// A wire structure could not be read from or written to a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the structure.
    #[error("{structure} needs {needed} bytes, the buffer has {got}")]
    TooShort {
        /// Structure name as in the SDK.
        structure: &'static str,
        /// `sizeof` the structure.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
}

/// A code given by a user could not be resolved (`odxctl explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The text is neither a number nor a known `STATUS_`/`ERROR_` name.
    #[error("not a number and not a known STATUS_ or ERROR_ name")]
    Unrecognised,
    /// A number that is neither a known NTSTATUS nor a known Win32 code.
    #[error("{0:#x} is not an NTSTATUS or Win32 code that ODX can return")]
    UnknownNumber(u32),
}

/// The token engine refused to store a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The store holds as many live tokens as it can.
    #[error("token store is full ({capacity} live tokens)")]
    StoreFull {
        /// Capacity of the store.
        capacity: usize,
    },
}
