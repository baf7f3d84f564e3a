//! Governance applied to one request: the rules see the request through its fact queries
//! ([`FactsSubject`]), and decisions go to a journal behind [`DecisionLog`]. The orchestration
//! (evaluate, govern, record) is `filter::pre_operation_in`'s; this module is what it uses.

use super::journal::{Event, Journal, JournalStats, PageResult, Record};
use super::matcher::{RuleSubject, VolumeNames};
use super::rule::RuleSet;
use crate::ctl::OffloadOp;
use crate::iomgr::RequestorMode;
use crate::status::NtStatus;

/// The rules in force and what they match a request against, beyond its facts.
#[derive(Clone, Copy, Debug)]
pub struct Governance<'a> {
    /// The rule set (first match wins; none matching: the volume's mode).
    pub rules: &'a RuleSet,
    /// The volume's names, cached per volume.
    pub volume: VolumeNames<'a>,
    /// The request's `RequestorMode` (`FLT_CALLBACK_DATA.RequestorMode`).
    pub requestor: RequestorMode,
}

/// Where decisions are recorded: [`Journal`] behind a trait object, so the request path is not
/// generic over the ring's size.
pub trait DecisionLog {
    /// Records a request that goes down; returns its sequence number for [`Self::complete`].
    fn record_forwarded(&self, event: &Event<'_>) -> u64;
    /// Records a request odxflt completed itself.
    fn record_completed(&self, event: &Event<'_>, status: NtStatus, bytes_done: u64) -> u64;
    /// Fills in the final status of forwarded request `seq`; `false` if its record is gone.
    fn complete(&self, seq: u64, status: NtStatus, bytes_done: u64) -> bool;
    /// Copies records from `from_seq` on into `out` ([`Journal::read_page`]).
    fn read_page(&self, from_seq: u64, out: &mut [Record]) -> PageResult;
    /// Counters ([`Journal::stats`]).
    fn stats(&self) -> JournalStats;
}

impl<const N: usize> DecisionLog for Journal<N> {
    fn record_forwarded(&self, event: &Event<'_>) -> u64 {
        Journal::record_forwarded(self, event)
    }
    fn record_completed(&self, event: &Event<'_>, status: NtStatus, bytes_done: u64) -> u64 {
        Journal::record_completed(self, event, status, bytes_done)
    }
    fn complete(&self, seq: u64, status: NtStatus, bytes_done: u64) -> bool {
        Journal::complete(self, seq, status, bytes_done)
    }
    fn read_page(&self, from_seq: u64, out: &mut [Record]) -> PageResult {
        Journal::read_page(self, from_seq, out)
    }
    fn stats(&self) -> JournalStats {
        Journal::stats(self)
    }
}

/// What the journal records: odxflt's `Parameters\Journal` (`REG_DWORD`), read at load.
///
/// | value | mode | per request |
/// |---|---|---|
/// | 0 | [`Self::Off`] | nothing: the request path is the one without a journal |
/// | 1, absent, any other value or type | [`Self::Decisions`] | a record; names only of requests a rule matched (already asked) |
/// | 2 | [`Self::Named`] | a record naming the process image and file of every request (one name query of each kind) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JournalMode {
    /// No journal.
    Off,
    /// Every decision, named when a rule needed the names.
    #[default]
    Decisions,
    /// Every decision, always named.
    Named,
}

impl JournalMode {
    /// The mode when `Parameters\Journal` is absent.
    pub const DEFAULT: Self = Self::Decisions;
    /// [`Self::as_u32`] of [`Self::DEFAULT`].
    pub const DEFAULT_CODE: u32 = Self::DEFAULT.as_u32();

    /// The mode a `REG_DWORD` value gives (`None`: absent, or not a `REG_DWORD`).
    #[must_use]
    pub const fn from_dword(value: Option<u32>) -> Self {
        match value {
            Some(0) => Self::Off,
            Some(2) => Self::Named,
            _ => Self::Decisions,
        }
    }

    /// The registry value of this mode.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        match self {
            Self::Off => 0,
            Self::Decisions => 1,
            Self::Named => 2,
        }
    }

    /// The mode's name in scenario files and `odxctl`: `off`, `decisions`, `named`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Decisions => "decisions",
            Self::Named => "named",
        }
    }

    /// The mode named `name` (see [`Self::name`]).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Off, Self::Decisions, Self::Named]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// Whether every record is named ([`JournalAt::names`]).
    #[must_use]
    pub const fn names(self) -> bool {
        matches!(self, Self::Named)
    }
}

/// The journal and what pre-operation records with each decision.
#[derive(Clone, Copy)]
pub struct JournalAt<'a> {
    /// The journal.
    pub log: &'a dyn DecisionLog,
    /// Now, in the journal's clock (100-ns ticks of system time in the driver).
    pub time: u64,
    /// The volume's index (the port's volume slot).
    pub volume: u32,
    /// The requesting process's id.
    pub process_id: u64,
    /// Ask the process image and file path for the record even when no rule needed them (one
    /// name query each per request); `false` records them only when the rules asked.
    pub names: bool,
}

impl core::fmt::Debug for JournalAt<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JournalAt")
            .field("time", &self.time)
            .field("volume", &self.volume)
            .field("process_id", &self.process_id)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// A forwarded request's journal record, for post-operation.
#[derive(Clone, Copy)]
pub struct JournalSeq<'a> {
    /// The journal.
    pub log: &'a dyn DecisionLog,
    /// The record's sequence number ([`crate::filter::PreOp::Forward`]'s `journal_seq`).
    pub seq: u64,
}

impl core::fmt::Debug for JournalSeq<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JournalSeq")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// A request as the rules see it: the cheap fields at hand, the expensive ones learnt before
/// the evaluation (`filter::pre_operation_in` asks the facts for what the candidate rules need,
/// then hands the answers in here), so the matcher's frames never call out of the image.
pub(crate) struct LearntSubject<'a> {
    pub(crate) op: OffloadOp,
    pub(crate) requestor: RequestorMode,
    pub(crate) length: u64,
    pub(crate) volume: VolumeNames<'a>,
    pub(crate) process: Option<&'a [u16]>,
    pub(crate) path: Option<&'a [u16]>,
    pub(crate) size: Option<u64>,
}

impl RuleSubject for LearntSubject<'_> {
    fn op(&self) -> OffloadOp {
        self.op
    }
    fn requestor(&self) -> RequestorMode {
        self.requestor
    }
    fn length(&self) -> u64 {
        self.length
    }
    fn volume(&self) -> VolumeNames<'_> {
        self.volume
    }
    fn process_image(&mut self) -> Option<&[u16]> {
        self.process
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        self.path
    }
    fn file_size(&mut self) -> Option<u64> {
        self.size
    }
}
