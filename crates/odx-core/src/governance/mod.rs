//! Governance an administrator can use (issue 15): an ordered, first-match table of rules that
//! picks a [`PolicyMode`](crate::policy::PolicyMode) for one request, and a journal of
//! decisions.
//!
//! - [`rule`]: the types ([`Rule`], [`RuleSet`], [`Name`], [`Bounds`]).
//! - [`parse`]: the text syntax (one rule per line; `Display` writes it back).
//! - [`matcher`]: first-match evaluation against a [`RuleSubject`] whose expensive facts
//!   (process image, file path, file size) are asked for lazily, at most once per evaluation.
//! - [`journal`]: a fixed ring of decision records, written lock-free from any IRQL up to
//!   `DISPATCH_LEVEL`, read in pages with overruns reported as a count.
//!
//! docs/governance-rules.md documents the syntax, the semantics and the record layout. Nothing
//! here allocates; strings are inline UTF-16 arrays because kernel names are UTF-16.

pub mod journal;
pub mod matcher;
pub mod parse;
pub mod request;
pub mod rule;

pub use journal::{DecidedBy, Event, Journal, JournalStats, PageResult, Record};
pub use matcher::{RuleSubject, VolumeNames};
pub use parse::{LineError, ParseReport, RuleError, TextLines, parse_rule, text_lines};
pub use request::{DecisionLog, Governance, JournalAt, JournalMode, JournalSeq};
pub use rule::{Action, Bounds, Field, Name, Needs, Rule, RuleSet};

/// Folds one UTF-16 unit for a case-insensitive comparison of names.
///
/// ASCII letters are upcased; any other unit that is a Unicode scalar value is replaced by its
/// simple uppercase mapping (`char::to_uppercase`) when that mapping is exactly one character in
/// the Basic Multilingual Plane, and left alone otherwise (surrogates, `ß` → `SS`, ...). NTFS
/// compares with the volume's `$UpCase` table instead, which was written when the volume was
/// formatted; docs/governance-rules.md lists where the two may differ.
#[must_use]
#[inline]
pub fn fold_unit(unit: u16) -> u16 {
    if let Ok(byte) = u8::try_from(unit) {
        if byte.is_ascii() {
            return u16::from(byte.to_ascii_uppercase());
        }
    }
    let Some(c) = char::from_u32(u32::from(unit)) else {
        return unit;
    };
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(unit),
        _ => unit,
    }
}

/// `a` and `b` are equal under [`fold_unit`].
#[must_use]
pub fn eq_fold(a: &[u16], b: &[u16]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold_unit(*x) == fold_unit(*y))
}

/// `subject` starts with `prefix` under [`fold_unit`].
#[must_use]
pub fn starts_with_fold(subject: &[u16], prefix: &[u16]) -> bool {
    subject
        .get(..prefix.len())
        .is_some_and(|head| eq_fold(head, prefix))
}

/// `subject` ends with `suffix` under [`fold_unit`].
#[must_use]
pub fn ends_with_fold(subject: &[u16], suffix: &[u16]) -> bool {
    subject
        .len()
        .checked_sub(suffix.len())
        .and_then(|start| subject.get(start..))
        .is_some_and(|tail| eq_fold(tail, suffix))
}

/// `\`.
pub(crate) const BACKSLASH: u16 = 0x5C;

/// The last path component of `path` (everything after the last `\`; all of it without one).
#[must_use]
pub fn final_component(path: &[u16]) -> &[u16] {
    match path.iter().rposition(|u| *u == BACKSLASH) {
        Some(i) => path.get(i.saturating_add(1)..).unwrap_or(&[]),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn folding_covers_ascii_latin1_and_greek_but_not_multi_char_mappings() {
        assert!(eq_fold(&w("Robocopy.EXE"), &w("robocopy.exe")));
        assert!(eq_fold(&w("ÉTÉ"), &w("été")));
        assert!(eq_fold(&w("ΣΊΣΥΦΟΣ"), &w("σίσυφοσ")));
        assert!(eq_fold(&w("Ж"), &w("ж")));
        // ß has no one-character uppercase: left alone, so it equals only itself.
        assert!(!eq_fold(&w("straße"), &w("STRASSE")));
        assert!(eq_fold(&w("STRAßE"), &w("straße")));
        assert!(!eq_fold(&w("a"), &w("b")));
        assert!(!eq_fold(&w("ab"), &w("a")));
        // Lone surrogates compare as themselves.
        assert!(eq_fold(&[0xD800], &[0xD800]));
        assert!(!eq_fold(&[0xD800], &[0xDC00]));
    }

    #[test]
    fn fold_is_idempotent_over_the_whole_bmp() {
        for u in 0..=u16::MAX {
            let f = fold_unit(u);
            assert_eq!(fold_unit(f), f, "{u:#06x}");
        }
    }

    #[test]
    fn prefixes_suffixes_and_final_components() {
        assert!(starts_with_fold(&w("\\Backups\\x"), &w("\\BACKUPS")));
        assert!(!starts_with_fold(&w("\\Back"), &w("\\Backups")));
        assert!(ends_with_fold(&w("a.VHDX"), &w(".vhdx")));
        assert!(!ends_with_fold(&w("vhdx"), &w(".vhdx")));
        assert_eq!(final_component(&w("\\a\\b.exe")), &w("b.exe")[..]);
        assert_eq!(final_component(&w("b.exe")), &w("b.exe")[..]);
        assert_eq!(final_component(&w("\\a\\")), &[] as &[u16]);
    }
}
