//! The rule types: what a rule matches, what it does, and the fixed-capacity ordered table.

use core::fmt;

use crate::ctl::OffloadOp;
use crate::iomgr::RequestorMode;
use crate::policy::PolicyMode;

/// What a matching rule does with a request: the same three modes a volume has
/// ([`PolicyMode`]), applied to one request (`policy::govern(action, ...)`):
/// enforce (today's checks), monitor (pass through, count), veto (refuse with
/// `STATUS_OFFLOAD_{READ,WRITE}_FLT_NOT_SUPPORTED`).
pub type Action = PolicyMode;

/// A rule's match field, as errors name it; [`Field::key`] is its key in the text syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `op=read|write|any`.
    Op,
    /// `requestor=user|kernel|any`.
    Requestor,
    /// `volume=NAME|any`.
    Volume,
    /// `process=IMAGE.EXE`.
    Process,
    /// `path=\PREFIX`.
    Path,
    /// `ext=.EXT`.
    Ext,
    /// `min-length=SIZE`.
    MinLength,
    /// `max-length=SIZE`.
    MaxLength,
    /// `min-size=SIZE`.
    MinSize,
    /// `max-size=SIZE`.
    MaxSize,
}

impl Field {
    /// Every field, in the order `Display` writes them.
    pub const ALL: [Self; 10] = [
        Self::Op,
        Self::Requestor,
        Self::Volume,
        Self::Process,
        Self::Path,
        Self::Ext,
        Self::MinLength,
        Self::MaxLength,
        Self::MinSize,
        Self::MaxSize,
    ];

    /// The key in the text syntax.
    #[must_use]
    pub const fn key(self) -> &'static str {
        match self {
            Self::Op => "op",
            Self::Requestor => "requestor",
            Self::Volume => "volume",
            Self::Process => "process",
            Self::Path => "path",
            Self::Ext => "ext",
            Self::MinLength => "min-length",
            Self::MaxLength => "max-length",
            Self::MinSize => "min-size",
            Self::MaxSize => "max-size",
        }
    }

    /// From a key (ASCII case-insensitive).
    #[must_use]
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.key().eq_ignore_ascii_case(key))
    }

    /// A bit of its own, for sets of fields.
    #[must_use]
    pub(crate) const fn bit(self) -> u16 {
        1u16.wrapping_shl(self as u32)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A name stored inline: at most `N` UTF-16 units, always valid UTF-16 (it can only be made from
/// a `&str`), compared case-insensitively by the matcher ([`super::fold_unit`]). The text is kept
/// as written, so `Display` gives back what the administrator typed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name<const N: usize> {
    units: [u16; N],
    len: u16,
}

impl<const N: usize> Name<N> {
    /// The capacity in UTF-16 units.
    pub const CAPACITY: usize = N;

    /// Encodes `text`; `None` when it needs more than `N` UTF-16 units.
    #[must_use]
    pub fn new(text: &str) -> Option<Self> {
        let mut units = [0u16; N];
        let mut len = 0usize;
        for u in text.encode_utf16() {
            *units.get_mut(len)? = u;
            len = len.checked_add(1)?;
        }
        Some(Self {
            units,
            len: u16::try_from(len).ok()?,
        })
    }

    /// The UTF-16 units.
    #[must_use]
    pub fn units(&self) -> &[u16] {
        self.units.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The name has no units.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> fmt::Display for Name<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in char::decode_utf16(self.units().iter().copied()) {
            fmt::Write::write_char(f, c.unwrap_or(char::REPLACEMENT_CHARACTER))?;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for Name<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", DebugName(self))
    }
}

struct DebugName<'a, const N: usize>(&'a Name<N>);

impl<const N: usize> fmt::Debug for DebugName<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        fmt::Display::fmt(self.0, f)?;
        f.write_str("\"")
    }
}

/// A volume name: `\Device\HarddiskVolume3`, `D:`, `\??\Volume{GUID}`; 64 UTF-16 units.
pub type VolumeName = Name<64>;
/// A process image file name (no directory): `robocopy.exe`; 64 UTF-16 units.
pub type ProcessName = Name<64>;
/// A path prefix relative to the volume root, starting with `\`: 260 UTF-16 units (`MAX_PATH`).
pub type PathPrefix = Name<260>;
/// A file name extension, starting with `.`: 16 UTF-16 units.
pub type Extension = Name<16>;

/// Inclusive bounds on a byte count: `min <= value <= max`, each optional. `min > max` cannot be
/// built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Bounds {
    min: Option<u64>,
    max: Option<u64>,
}

impl Bounds {
    /// No bound: every value.
    pub const ANY: Self = Self {
        min: None,
        max: None,
    };

    /// `None` when both are given and `min > max`.
    #[must_use]
    pub const fn new(min: Option<u64>, max: Option<u64>) -> Option<Self> {
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return None;
            }
        }
        Some(Self { min, max })
    }

    /// The lower bound.
    #[must_use]
    pub const fn min(&self) -> Option<u64> {
        self.min
    }

    /// The upper bound.
    #[must_use]
    pub const fn max(&self) -> Option<u64> {
        self.max
    }

    /// At least one bound is given.
    #[must_use]
    pub const fn is_bounded(&self) -> bool {
        self.min.is_some() || self.max.is_some()
    }

    /// `value` is within the bounds.
    #[must_use]
    pub fn contains(&self, value: u64) -> bool {
        self.min.is_none_or(|lo| value >= lo) && self.max.is_none_or(|hi| value <= hi)
    }
}

/// One rule: the fields it matches (each `None` / unbounded matches everything) and its action.
///
/// A rule matches a request when every field it names matches; see docs/governance-rules.md for
/// each field's comparison. Build rules with [`super::parse_rule`] (which checks what the syntax
/// requires of each field: a path starting with `\`, a process name without one, ...) or set the
/// fields directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// What a matching rule does.
    pub action: Action,
    /// Offload read or write; `None`: both.
    pub op: Option<OffloadOp>,
    /// The request's `PreviousMode`; `None`: both.
    pub requestor: Option<RequestorMode>,
    /// The volume, by one of its names; `None`: every volume.
    pub volume: Option<VolumeName>,
    /// The requesting process's image file name; `None`: every process.
    pub process: Option<ProcessName>,
    /// A prefix of the file's path relative to the volume root, matched whole components at a
    /// time; `None`: every path.
    pub path: Option<PathPrefix>,
    /// The end of the file's name; `None`: every name.
    pub ext: Option<Extension>,
    /// The request's `CopyLength`.
    pub length: Bounds,
    /// The file's end of file.
    pub size: Bounds,
}

impl Rule {
    /// A rule that matches every request, with this action.
    #[must_use]
    pub const fn any(action: Action) -> Self {
        Self {
            action,
            op: None,
            requestor: None,
            volume: None,
            process: None,
            path: None,
            ext: None,
            length: Bounds::ANY,
            size: Bounds::ANY,
        }
    }

    /// What evaluating this rule may ask the subject for.
    #[must_use]
    pub const fn needs(&self) -> Needs {
        let mut n = Needs::empty();
        if self.size.is_bounded() {
            n = n.union(Needs::SIZE);
        }
        if self.process.is_some() {
            n = n.union(Needs::PROCESS);
        }
        if self.path.is_some() || self.ext.is_some() {
            n = n.union(Needs::PATH);
        }
        n
    }
}

bitflags::bitflags! {
    /// The lazy subject queries a rule, or any rule of a set, may need.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Needs: u8 {
        /// [`super::RuleSubject::file_size`].
        const SIZE = 1;
        /// [`super::RuleSubject::process_image`].
        const PROCESS = 2;
        /// [`super::RuleSubject::file_path`].
        const PATH = 4;
    }
}

/// The ordered rule table: at most [`RuleSet::CAPACITY`] rules, the first that matches wins,
/// none matching leaves the request to the volume's mode.
///
/// About 57 KiB (see docs/governance-rules.md); the in-place loaders ([`RuleSet::load_lines`],
/// [`RuleSet::try_load_lines`]) fill one that already lives in pool or static memory, for callers
/// with a small stack.
#[derive(Clone)]
pub struct RuleSet {
    pub(crate) rules: [Rule; RuleSet::CAPACITY],
    pub(crate) len: usize,
    pub(crate) needs: Needs,
}

static_assertions::const_assert!(RuleSet::CAPACITY <= 64);

impl RuleSet {
    /// The most rules a set holds (the matcher keeps one candidate bit per rule in a `u64`).
    pub const CAPACITY: usize = 64;

    /// No rules.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            rules: [Rule::any(Action::Enforce); Self::CAPACITY],
            len: 0,
            needs: Needs::empty(),
        }
    }

    /// The rules, in order.
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        self.rules.get(..self.len).unwrap_or(&[])
    }

    /// The number of rules.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// No rules: every request is governed by its volume's mode.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rule `index`.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<&Rule> {
        self.rules().get(index)
    }

    /// The union of what the rules may ask for: a caller can skip preparing a query no rule needs.
    #[must_use]
    pub const fn needs(&self) -> Needs {
        self.needs
    }

    /// Some rule matches on the file's size.
    #[must_use]
    pub const fn needs_size(&self) -> bool {
        self.needs.contains(Needs::SIZE)
    }

    /// Some rule matches on the process image name.
    #[must_use]
    pub const fn needs_process(&self) -> bool {
        self.needs.contains(Needs::PROCESS)
    }

    /// Some rule matches on the file's path or extension.
    #[must_use]
    pub const fn needs_path(&self) -> bool {
        self.needs.contains(Needs::PATH)
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.len = 0;
        self.needs = Needs::empty();
    }

    /// Appends `rule`; its index, or `None` when the set is full.
    pub fn push(&mut self, rule: Rule) -> Option<usize> {
        let index = self.len;
        *self.rules.get_mut(index)? = rule;
        self.len = index.checked_add(1)?;
        self.needs = self.needs.union(rule.needs());
        Some(index)
    }

    /// Inserts `rule` before rule `index` (`index == len()` appends); `false` when the set is
    /// full or `index > len()`.
    pub fn insert(&mut self, index: usize, rule: Rule) -> bool {
        if index > self.len || self.len >= Self::CAPACITY {
            return false;
        }
        let Some(end) = self.len.checked_add(1) else {
            return false;
        };
        let Some(tail) = self.rules.get_mut(index..end) else {
            return false;
        };
        tail.rotate_right(1);
        if let Some(first) = tail.first_mut() {
            *first = rule;
        }
        self.len = end;
        self.needs = self.needs.union(rule.needs());
        true
    }

    /// Removes and returns rule `index`; later rules move up one place.
    pub fn remove(&mut self, index: usize) -> Option<Rule> {
        let tail = self.rules.get_mut(index..self.len)?;
        let removed = *tail.first()?;
        tail.rotate_left(1);
        self.len = self.len.saturating_sub(1);
        self.needs = self
            .rules()
            .iter()
            .fold(Needs::empty(), |n, r| n.union(r.needs()));
        Some(removed)
    }
}

/// Two sets are equal when they hold the same rules in the same order (slots past the end are
/// not compared).
impl PartialEq for RuleSet {
    fn eq(&self, other: &Self) -> bool {
        self.rules() == other.rules()
    }
}

impl Eq for RuleSet {}

impl Default for RuleSet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.rules()).finish()
    }
}
