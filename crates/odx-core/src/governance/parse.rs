//! The text syntax of a rule, one rule per line (one `REG_MULTI_SZ` string per rule in the
//! registry), and `Display`, which writes a rule back in a form [`parse_rule`] reads as the same
//! rule.
//!
//! ```text
//! veto op=write process=robocopy.exe path=\Backups\ ext=.vhdx min-length=1M volume=D:
//! monitor max-size=262143        # files under 256 KiB gain nothing from offload
//! enforce path="\VM Images\" requestor=user
//! ```
//!
//! An action (`enforce`, `monitor`, `veto`), then `key=value` fields separated by blanks, each
//! key at most once; a value with blanks is quoted (`"..."`, no escapes: no Windows name may
//! contain `"`); sizes are decimal with an optional binary suffix `K`, `M`, `G`, `T`; a `#` that
//! starts a word starts a comment; blank lines and comment lines are not rules. Keys, actions and
//! keyword values are case-insensitive. docs/governance-rules.md has the full grammar.

use core::fmt;

use super::rule::{Bounds, Field, Name, Rule, RuleSet};
use crate::ctl::OffloadOp;
use crate::iomgr::RequestorMode;
use crate::policy::PolicyMode;

/// A short copy of the text an error is about (up to 24 bytes, cut at a character boundary).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snippet {
    bytes: [u8; Snippet::CAPACITY],
    len: u8,
    truncated: bool,
}

impl Snippet {
    /// The most bytes kept.
    pub const CAPACITY: usize = 24;

    /// Copies the start of `text`.
    #[must_use]
    pub fn new(text: &str) -> Self {
        let mut end = text.len().min(Self::CAPACITY);
        while !text.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        let mut bytes = [0u8; Self::CAPACITY];
        let src = text.as_bytes().get(..end).unwrap_or(&[]);
        if let Some(dst) = bytes.get_mut(..src.len()) {
            dst.copy_from_slice(src);
        }
        Self {
            bytes,
            len: u8::try_from(end).unwrap_or(0),
            truncated: end < text.len(),
        }
    }

    /// The text kept.
    #[must_use]
    pub fn as_str(&self) -> &str {
        let kept = self.bytes.get(..usize::from(self.len)).unwrap_or(&[]);
        core::str::from_utf8(kept).unwrap_or("")
    }

    /// The text was longer than what is kept.
    #[must_use]
    pub const fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Why a line is not a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleError {
    /// Blank, or only a comment ([`RuleSet::parse_lines`] skips such lines silently).
    Empty,
    /// The first word is not `enforce`, `monitor` or `veto`.
    UnknownAction(Snippet),
    /// A word after the action is not `key=value`.
    NotKeyValue(Snippet),
    /// A key no field has.
    UnknownKey(Snippet),
    /// A key given twice.
    DuplicateKey(Field),
    /// `key=` or `key=""`.
    EmptyValue(Field),
    /// A value the field does not accept (see [`RuleError`]'s `Display` for what it expects).
    BadValue(Field),
    /// A quoted value without its closing `"`.
    UnterminatedQuote(Field),
    /// A name longer than the field holds.
    TooLong {
        /// The field.
        field: Field,
        /// Its capacity in UTF-16 units.
        limit: usize,
    },
    /// `min-length` above `max-length`, or `min-size` above `max-size`.
    MinAboveMax {
        /// The lower bound's field.
        min: Field,
        /// The upper bound's field.
        max: Field,
    },
    /// More rules than the set holds.
    TooManyRules {
        /// [`RuleSet::CAPACITY`].
        capacity: usize,
    },
}

impl RuleError {
    /// The field the error is about, when it is about one.
    #[must_use]
    pub const fn field(&self) -> Option<Field> {
        match *self {
            Self::DuplicateKey(f)
            | Self::EmptyValue(f)
            | Self::BadValue(f)
            | Self::UnterminatedQuote(f)
            | Self::TooLong { field: f, .. }
            | Self::MinAboveMax { min: f, .. } => Some(f),
            Self::Empty
            | Self::UnknownAction(_)
            | Self::NotKeyValue(_)
            | Self::UnknownKey(_)
            | Self::TooManyRules { .. } => None,
        }
    }
}

/// What a field's value must look like, for error messages.
const fn expected(field: Field) -> &'static str {
    match field {
        Field::Op => "read, write or any",
        Field::Requestor => "user, kernel or any",
        Field::Volume => "a volume name (D:, \\Device\\HarddiskVolume3, \\??\\Volume{GUID}) or any",
        Field::Process => "an image file name without a directory (robocopy.exe)",
        Field::Path => "a path from the volume root starting with \\ (\\Backups\\)",
        Field::Ext => "a file name extension (.vhdx)",
        Field::MinLength | Field::MaxLength | Field::MinSize | Field::MaxSize => {
            "a byte count, decimal with an optional K, M, G or T suffix (256K)"
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty rule (a blank line or a comment)"),
            Self::UnknownAction(s) => {
                write!(
                    f,
                    "unknown action '{s}' (expected enforce, monitor or veto)"
                )
            }
            Self::NotKeyValue(s) => write!(f, "'{s}' is not key=value"),
            Self::UnknownKey(s) => write!(
                f,
                "unknown key '{s}' (expected op, requestor, volume, process, path, ext, \
                 min-length, max-length, min-size or max-size)"
            ),
            Self::DuplicateKey(k) => write!(f, "{k} is given twice"),
            Self::EmptyValue(k) => write!(f, "{k} has an empty value (expected {})", expected(*k)),
            Self::BadValue(k) => write!(f, "bad value for {k} (expected {})", expected(*k)),
            Self::UnterminatedQuote(k) => write!(f, "the value of {k} has no closing \""),
            Self::TooLong { field, limit } => {
                write!(
                    f,
                    "the value of {field} is longer than {limit} UTF-16 units"
                )
            }
            Self::MinAboveMax { min, max } => write!(f, "{min} is above {max}"),
            Self::TooManyRules { capacity } => {
                write!(f, "too many rules (a rule set holds {capacity})")
            }
        }
    }
}

/// A [`RuleError`] and the line it is on (1-based, counting blank and comment lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineError {
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub error: RuleError,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

/// What a lenient load ([`RuleSet::parse_lines`], [`RuleSet::load_lines`]) did: rules taken,
/// lines rejected, and the first [`ParseReport::KEPT`] rejections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseReport {
    /// Rules taken into the set.
    pub accepted: usize,
    /// Lines that were neither rules nor blank/comment lines (all of them, kept or not).
    pub rejected: usize,
    errors: [LineError; ParseReport::KEPT],
}

impl ParseReport {
    /// How many rejections are kept with their line and reason.
    pub const KEPT: usize = 8;

    const fn new() -> Self {
        Self {
            accepted: 0,
            rejected: 0,
            errors: [LineError {
                line: 0,
                error: RuleError::Empty,
            }; Self::KEPT],
        }
    }

    /// The first rejections, in line order.
    #[must_use]
    pub fn errors(&self) -> &[LineError] {
        let kept = self.rejected.min(Self::KEPT);
        self.errors.get(..kept).unwrap_or(&[])
    }

    /// Every line was a rule, a blank line or a comment.
    #[must_use]
    pub const fn is_clean(&self) -> bool {
        self.rejected == 0
    }

    fn reject(&mut self, error: LineError) {
        if let Some(slot) = self.errors.get_mut(self.rejected) {
            *slot = error;
        }
        self.rejected = self.rejected.saturating_add(1);
    }
}

impl fmt::Display for ParseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rules, {} lines rejected",
            self.accepted, self.rejected
        )?;
        for e in self.errors() {
            write!(f, "\n  {e}")?;
        }
        if self.rejected > Self::KEPT {
            write!(f, "\n  ({} more)", self.rejected.saturating_sub(Self::KEPT))?;
        }
        Ok(())
    }
}

// Every separator of the syntax is ASCII, so the searches below run over bytes: a byte position
// of an ASCII byte is a character boundary, and `str::get` / `split_at_checked` check it anyway.
// `str::find` and friends are not used: their searchers index with bounds the compiler cannot
// prove, and in the driver's build those are reachable panic sites (`KeBugCheckEx`).

/// The position of the first byte of `text` for which `pred` holds.
fn position(text: &str, pred: impl Fn(u8) -> bool) -> Option<usize> {
    text.bytes().position(pred)
}

/// `text` without its leading blanks.
fn trim_blank_start(text: &str) -> &str {
    let start = position(text, |b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    text.get(start..).unwrap_or("")
}

/// Splits `text` at its first blank: (word, rest starting at the blank).
fn split_word(text: &str) -> (&str, &str) {
    let end = position(text, |b| b.is_ascii_whitespace()).unwrap_or(text.len());
    text.split_at_checked(end).unwrap_or((text, ""))
}

/// Reads one value after `key=`: (value, rest of the line).
fn split_value(after_eq: &str, field: Field) -> Result<(&str, &str), RuleError> {
    if let Some(quoted) = after_eq.strip_prefix('"') {
        let close = position(quoted, |b| b == b'"').ok_or(RuleError::UnterminatedQuote(field))?;
        let (value, tail) = quoted
            .split_at_checked(close)
            .ok_or(RuleError::UnterminatedQuote(field))?;
        let rest = tail.get(1..).unwrap_or("");
        if rest
            .bytes()
            .next()
            .is_some_and(|b| !b.is_ascii_whitespace())
        {
            return Err(RuleError::BadValue(field));
        }
        Ok((value, rest))
    } else {
        let (value, rest) = split_word(after_eq);
        if position(value, |b| b == b'"').is_some() {
            return Err(RuleError::BadValue(field));
        }
        Ok((value, rest))
    }
}

/// A character no name in a rule may hold: controls and what Windows forbids in names
/// (`"` `*` `<` `>` `|` `/`); `?` only in volume names (`\\?\Volume{...}`), `:` only in volume
/// names (`D:`), `\` not in process names or extensions.
fn forbidden(field: Field, c: char) -> bool {
    if c.is_control() || matches!(c, '"' | '*' | '<' | '>' | '|' | '/') {
        return true;
    }
    match field {
        Field::Volume => false,
        Field::Path => matches!(c, '?' | ':'),
        _ => matches!(c, '?' | ':' | '\\'),
    }
}

fn name<const N: usize>(field: Field, value: &str) -> Result<Name<N>, RuleError> {
    if value.chars().any(|c| forbidden(field, c)) {
        return Err(RuleError::BadValue(field));
    }
    Name::new(value).ok_or(RuleError::TooLong { field, limit: N })
}

const SUFFIXES: [(char, u32); 4] = [('T', 40), ('G', 30), ('M', 20), ('K', 10)];

/// A byte count: decimal digits and an optional binary suffix (`K` = 1024, `M`, `G`, `T`).
fn size(field: Field, value: &str) -> Result<u64, RuleError> {
    let bad = RuleError::BadValue(field);
    let (digits, shift) = match value.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let shift = SUFFIXES
                .iter()
                .find(|(s, _)| s.eq_ignore_ascii_case(&c))
                .map(|(_, shift)| *shift)
                .ok_or(bad)?;
            (
                value.get(..value.len().saturating_sub(1)).ok_or(bad)?,
                shift,
            )
        }
        _ => (value, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let n: u64 = digits.parse().map_err(|_| bad)?;
    n.checked_mul(1u64.checked_shl(shift).ok_or(bad)?)
        .ok_or(bad)
}

fn keyword<T: Copy>(
    field: Field,
    value: &str,
    table: &[(&str, Option<T>)],
) -> Result<Option<T>, RuleError> {
    table
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(value))
        .map(|(_, v)| *v)
        .ok_or(RuleError::BadValue(field))
}

/// Sets one field of `rule` (bounds go to `lengths` / `sizes`, checked at the end of the line).
fn apply(
    rule: &mut Rule,
    bounds: &mut [Option<u64>; 4],
    field: Field,
    value: &str,
) -> Result<(), RuleError> {
    match field {
        Field::Op => {
            rule.op = keyword(
                field,
                value,
                &[
                    ("read", Some(OffloadOp::Read)),
                    ("write", Some(OffloadOp::Write)),
                    ("any", None),
                ],
            )?;
        }
        Field::Requestor => {
            rule.requestor = keyword(
                field,
                value,
                &[
                    ("user", Some(RequestorMode::User)),
                    ("kernel", Some(RequestorMode::Kernel)),
                    ("any", None),
                ],
            )?;
        }
        Field::Volume => {
            rule.volume = if value.eq_ignore_ascii_case("any") {
                None
            } else {
                Some(name(field, value)?)
            };
        }
        Field::Process => rule.process = Some(name(field, value)?),
        Field::Path => {
            if !value.starts_with('\\') {
                return Err(RuleError::BadValue(field));
            }
            rule.path = Some(name(field, value)?);
        }
        Field::Ext => {
            let ext = if value.starts_with('.') {
                name(field, value)?
            } else {
                // `ext=vhdx` means `.vhdx`: check the value, then store it with its dot.
                let bare: Name<16> = name(field, value)?;
                dotted(bare).ok_or(RuleError::TooLong { field, limit: 16 })?
            };
            if ext.units().len() < 2 {
                return Err(RuleError::BadValue(field));
            }
            rule.ext = Some(ext);
        }
        Field::MinLength | Field::MaxLength | Field::MinSize | Field::MaxSize => {
            let i = match field {
                Field::MinLength => 0,
                Field::MaxLength => 1,
                Field::MinSize => 2,
                _ => 3,
            };
            if let Some(slot) = bounds.get_mut(i) {
                *slot = Some(size(field, value)?);
            }
        }
    }
    Ok(())
}

/// `.` followed by `bare`, if that fits.
fn dotted<const N: usize>(bare: Name<N>) -> Option<Name<N>> {
    let mut text = [0u8; 64];
    let mut w = Cursor {
        buf: &mut text,
        len: 0,
    };
    fmt::Write::write_fmt(&mut w, format_args!(".{bare}")).ok()?;
    let len = w.len;
    Name::new(core::str::from_utf8(text.get(..len)?).ok()?)
}

/// A `fmt::Write` into a fixed buffer; fails when it is full.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Parses one rule from one line (see the module documentation for the syntax).
///
/// # Errors
/// [`RuleError::Empty`] for a blank or comment-only line; otherwise the first problem found,
/// left to right, naming the field it is about.
pub fn parse_rule(line: &str) -> Result<Rule, RuleError> {
    let rest = trim_blank_start(line);
    if rest.is_empty() || rest.starts_with('#') {
        return Err(RuleError::Empty);
    }
    let (word, mut rest) = split_word(rest);
    let action = PolicyMode::from_name(word).ok_or(RuleError::UnknownAction(Snippet::new(word)))?;
    let mut rule = Rule::any(action);
    let mut seen = 0u16;
    let mut bounds = [None; 4];
    loop {
        rest = trim_blank_start(rest);
        if rest.is_empty() || rest.starts_with('#') {
            break;
        }
        let key_end =
            position(rest, |b| b == b'=' || b.is_ascii_whitespace()).unwrap_or(rest.len());
        let (key, after) = rest.split_at_checked(key_end).unwrap_or((rest, ""));
        let Some(after_eq) = after.strip_prefix('=') else {
            return Err(RuleError::NotKeyValue(Snippet::new(split_word(rest).0)));
        };
        let field = Field::from_key(key).ok_or(RuleError::UnknownKey(Snippet::new(key)))?;
        if seen & field.bit() != 0 {
            return Err(RuleError::DuplicateKey(field));
        }
        seen |= field.bit();
        let (value, tail) = split_value(after_eq, field)?;
        if value.is_empty() {
            return Err(RuleError::EmptyValue(field));
        }
        apply(&mut rule, &mut bounds, field, value)?;
        rest = tail;
    }
    let [min_len, max_len, min_size, max_size] = bounds;
    rule.length = Bounds::new(min_len, max_len).ok_or(RuleError::MinAboveMax {
        min: Field::MinLength,
        max: Field::MaxLength,
    })?;
    rule.size = Bounds::new(min_size, max_size).ok_or(RuleError::MinAboveMax {
        min: Field::MinSize,
        max: Field::MaxSize,
    })?;
    Ok(rule)
}

/// The lines of a rule text: split at `\n`, a `\r` before it dropped (what the port's
/// `SetRules` and `odxctl rules load` hand in). Neither `str::split` nor `split_once` is used:
/// both search with an index the compiler cannot prove in bounds (a panic site in the
/// panic-check build).
#[must_use]
pub fn text_lines(text: &str) -> TextLines<'_> {
    TextLines { rest: Some(text) }
}

/// The iterator of [`text_lines`].
#[derive(Clone, Debug)]
pub struct TextLines<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for TextLines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        // A byte search (`\n` is ASCII, so both sides stay on character boundaries); `str::get`
        // rather than indexing or a char searcher, neither of which is proven in bounds.
        let (line, tail) = match rest.bytes().position(|b| b == b'\n') {
            Some(at) => (
                rest.get(..at).unwrap_or_default(),
                rest.get(at.saturating_add(1)..),
            ),
            None => (rest, None),
        };
        self.rest = tail;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

impl RuleSet {
    /// Parses one rule per line, skipping (and reporting) lines that are not rules; blank and
    /// comment lines are skipped silently. Never fails: what the driver does at load
    /// ("bad lines reported and skipped, never a failed load").
    #[must_use]
    pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> (Self, ParseReport) {
        let mut set = Self::new();
        let report = set.load_lines(lines);
        (set, report)
    }

    /// [`RuleSet::parse_lines`] into `self` (replacing its rules), for a set that already lives
    /// where it will be used.
    pub fn load_lines<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) -> ParseReport {
        self.clear();
        let mut report = ParseReport::new();
        // `zip` with a bounded range, not `enumerate`: the latter's counter is an addition the
        // compiler cannot prove free of overflow (a panic site under overflow checks).
        for (line, text) in (1..=usize::MAX).zip(lines) {
            match parse_rule(text) {
                Ok(rule) => {
                    if self.push(rule).is_some() {
                        report.accepted = report.accepted.saturating_add(1);
                    } else {
                        report.reject(LineError {
                            line,
                            error: RuleError::TooManyRules {
                                capacity: Self::CAPACITY,
                            },
                        });
                    }
                }
                Err(RuleError::Empty) => {}
                Err(error) => report.reject(LineError { line, error }),
            }
        }
        report
    }

    /// Parses one rule per line, all or nothing: the first line that is not a rule (nor blank,
    /// nor a comment), or the first rule past [`RuleSet::CAPACITY`], is the error.
    ///
    /// # Errors
    /// The first bad line, with its number.
    pub fn try_parse_lines<'a>(
        lines: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, LineError> {
        let mut set = Self::new();
        // `zip` with a bounded range, not `enumerate`: the latter's counter is an addition the
        // compiler cannot prove free of overflow (a panic site under overflow checks).
        for (line, text) in (1..=usize::MAX).zip(lines) {
            match parse_rule(text) {
                Ok(rule) => {
                    set.push(rule).ok_or(LineError {
                        line,
                        error: RuleError::TooManyRules {
                            capacity: Self::CAPACITY,
                        },
                    })?;
                }
                Err(RuleError::Empty) => {}
                Err(error) => return Err(LineError { line, error }),
            }
        }
        Ok(set)
    }

    /// [`RuleSet::try_parse_lines`] into `self`: on success the rules are replaced and their
    /// number returned; on error `self` is left exactly as it was (the lines are read twice:
    /// once to check them all, once to fill the set, so no second set is needed).
    ///
    /// # Errors
    /// The first bad line, with its number.
    pub fn try_load_lines<'a, I>(&mut self, lines: I) -> Result<usize, LineError>
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: Clone,
    {
        let lines = lines.into_iter();
        let mut count = 0usize;
        for (line, text) in (1..=usize::MAX).zip(lines.clone()) {
            match parse_rule(text) {
                Ok(_) if count >= Self::CAPACITY => {
                    return Err(LineError {
                        line,
                        error: RuleError::TooManyRules {
                            capacity: Self::CAPACITY,
                        },
                    });
                }
                Ok(_) => count = count.saturating_add(1),
                Err(RuleError::Empty) => {}
                Err(error) => return Err(LineError { line, error }),
            }
        }
        self.clear();
        for rule in lines.filter_map(|text| parse_rule(text).ok()) {
            self.push(rule);
        }
        Ok(self.len())
    }
}

/// Writes a byte count with the largest binary suffix that divides it.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        for (suffix, shift) in SUFFIXES {
            let unit = 1u64 << shift;
            if v != 0 && v.checked_rem(unit) == Some(0) {
                return write!(f, "{}{suffix}", v.checked_div(unit).unwrap_or(0));
            }
        }
        write!(f, "{v}")
    }
}

/// Writes ` key=value`, quoting a value that holds a blank.
fn field(f: &mut fmt::Formatter<'_>, field: Field, value: impl fmt::Display) -> fmt::Result {
    let mut buf = [0u8; 4 * 260];
    let mut w = Cursor {
        buf: &mut buf,
        len: 0,
    };
    if fmt::Write::write_fmt(&mut w, format_args!("{value}")).is_ok() {
        let len = w.len;
        let text = buf
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("");
        if position(text, |b| b.is_ascii_whitespace()).is_some() {
            write!(f, " {field}=\"{text}\"")
        } else {
            write!(f, " {field}={text}")
        }
    } else {
        // Longer than any field holds: not a value the parser made.
        write!(f, " {field}=\"{value}\"")
    }
}

impl fmt::Display for Rule {
    /// The rule in the text syntax: the action, then each field that is set, in
    /// [`Field::ALL`] order. `parse_rule` reads it back as the same rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action.name())?;
        if let Some(op) = self.op {
            let name = match op {
                OffloadOp::Read => "read",
                OffloadOp::Write => "write",
            };
            field(f, Field::Op, name)?;
        }
        if let Some(r) = self.requestor {
            let name = match r {
                RequestorMode::User => "user",
                RequestorMode::Kernel => "kernel",
            };
            field(f, Field::Requestor, name)?;
        }
        if let Some(v) = &self.volume {
            field(f, Field::Volume, v)?;
        }
        if let Some(p) = &self.process {
            field(f, Field::Process, p)?;
        }
        if let Some(p) = &self.path {
            field(f, Field::Path, p)?;
        }
        if let Some(e) = &self.ext {
            field(f, Field::Ext, e)?;
        }
        let bounds = [
            (Field::MinLength, self.length.min()),
            (Field::MaxLength, self.length.max()),
            (Field::MinSize, self.size.min()),
            (Field::MaxSize, self.size.max()),
        ];
        for (k, v) in bounds {
            if let Some(v) = v {
                field(f, k, Size(v))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for RuleSet {
    /// One rule per line, in order (what `odxctl rules save` writes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in self.rules() {
            writeln!(f, "{rule}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_overflow() {
        let f = Field::MinSize;
        assert_eq!(size(f, "0"), Ok(0));
        assert_eq!(size(f, "256K"), Ok(256 * 1024));
        assert_eq!(size(f, "1m"), Ok(1 << 20));
        assert_eq!(size(f, "3G"), Ok(3 << 30));
        assert_eq!(size(f, "2T"), Ok(2 << 40));
        assert_eq!(size(f, "18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "",
            "K",
            "1KB",
            "1X",
            "-1",
            "+1",
            "1.5M",
            "18446744073709551616",
            "16777216T",
            " 1",
        ] {
            assert_eq!(size(f, bad), Err(RuleError::BadValue(f)), "{bad:?}");
        }
    }

    #[test]
    fn sizes_are_written_with_the_largest_exact_suffix() {
        let s = |v| std::format!("{}", Size(v));
        assert_eq!(s(0), "0");
        assert_eq!(s(1023), "1023");
        assert_eq!(s(1024), "1K");
        assert_eq!(s(262_143), "262143");
        assert_eq!(s(3 << 30), "3G");
        assert_eq!(s(1 << 50), "1024T");
        assert_eq!(s(u64::MAX), "18446744073709551615");
    }

    #[test]
    fn snippets_cut_at_a_character_boundary() {
        let s = Snippet::new("ééééééééééééééééééé");
        assert_eq!(s.as_str().len(), 24);
        assert!(s.is_truncated());
        let s = Snippet::new("aéééééééééééé");
        assert_eq!(s.as_str().len(), 23);
        assert_eq!(Snippet::new("key").as_str(), "key");
        assert!(!Snippet::new("key").is_truncated());
    }
}
