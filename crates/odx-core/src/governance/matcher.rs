//! First-match evaluation of a [`RuleSet`] against one request.
//!
//! The cheap fields (operation, requestor, `CopyLength`, volume) of every rule are compared
//! first; then, walking the surviving candidates in order, a lazy query is made only when the
//! first remaining candidate needs it, at most once per evaluation, and its answer is applied to
//! every remaining candidate at once. So a request that no rule could match by its cheap fields
//! costs no query at all, and a set whose rules name only processes never asks for a path.
//!
//! A lazy query that fails (`None`) makes every rule that needs it not match: the request falls
//! to the next rule, and finally to the volume's mode. That is the safe direction for every
//! action: a rule that cannot be checked neither vetoes nor exempts a request.

use super::rule::{Action, Needs, Rule, RuleSet};
use super::{BACKSLASH, ends_with_fold, eq_fold, final_component, starts_with_fold};
use crate::ctl::OffloadOp;
use crate::iomgr::RequestorMode;

/// The names of a request's volume, cached per volume by the caller (instance setup in the
/// driver). A rule's `volume=` matches when it equals any of them (case-insensitively, a trailing
/// `\` ignored on both sides). An empty slice is a name the volume does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VolumeNames<'a> {
    /// The device name: `\Device\HarddiskVolume3`.
    pub device: &'a [u16],
    /// The DOS name: `D:`.
    pub dos: &'a [u16],
    /// The volume GUID name: `\??\Volume{...}`.
    pub guid: &'a [u16],
}

/// One request, as the rules see it: cheap fields the caller has at hand, and lazy queries for
/// the expensive ones.
///
/// [`RuleSet::evaluate`] calls each lazy query at most once per evaluation, and only when a rule
/// that is still a candidate (its cheap fields matched, no earlier rule matched) needs it.
pub trait RuleSubject {
    /// `FSCTL_OFFLOAD_READ` or `FSCTL_OFFLOAD_WRITE`.
    fn op(&self) -> OffloadOp;
    /// The request's `PreviousMode`.
    fn requestor(&self) -> RequestorMode;
    /// The request's `CopyLength`.
    fn length(&self) -> u64;
    /// The volume's names.
    fn volume(&self) -> VolumeNames<'_>;
    /// The requesting process's image name: its file name (`robocopy.exe`) or a full image path
    /// (only the part after the last `\` is compared). `None`: it could not be learnt.
    fn process_image(&mut self) -> Option<&[u16]>;
    /// The file's path from the volume root (`\Backups\db.vhdx`), without the volume's device
    /// name; anything from the first `:` on (a stream name) is ignored. `None`: it could not be
    /// learnt.
    fn file_path(&mut self) -> Option<&[u16]>;
    /// The file's end of file. `None`: it could not be learnt.
    fn file_size(&mut self) -> Option<u64>;
}

/// `name` without one trailing `\`.
fn trim_backslash(name: &[u16]) -> &[u16] {
    match name.split_last() {
        Some((&BACKSLASH, head)) => head,
        _ => name,
    }
}

/// `rule` matches by the fields a subject has at hand.
fn cheap_match(
    rule: &Rule,
    op: OffloadOp,
    requestor: RequestorMode,
    length: u64,
    volume: &VolumeNames<'_>,
) -> bool {
    rule.op.is_none_or(|o| o == op)
        && rule.requestor.is_none_or(|r| r == requestor)
        && rule.length.contains(length)
        && rule.volume.as_ref().is_none_or(|v| {
            let want = trim_backslash(v.units());
            [volume.device, volume.dos, volume.guid]
                .into_iter()
                .any(|have| !have.is_empty() && eq_fold(trim_backslash(have), want))
        })
}

/// `path` (up to its first `:`) matches the rule's prefix and extension.
fn path_match(rule: &Rule, path: &[u16]) -> bool {
    let path = match path.iter().position(|u| *u == u16::from(b':')) {
        Some(colon) => path.get(..colon).unwrap_or(path),
        None => path,
    };
    let prefix_ok = rule.path.as_ref().is_none_or(|p| {
        let prefix = p.units();
        // Whole components: `\Backups` matches `\Backups` and `\Backups\...`, not `\BackupsOld`.
        starts_with_fold(path, prefix)
            && (prefix.last() == Some(&BACKSLASH)
                || path.get(prefix.len()).is_none_or(|next| *next == BACKSLASH))
    });
    prefix_ok
        && rule
            .ext
            .as_ref()
            .is_none_or(|e| ends_with_fold(final_component(path), e.units()))
}

/// The bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let i = mask.trailing_zeros();
        if i >= 64 {
            return None;
        }
        mask &= mask.wrapping_sub(1);
        usize::try_from(i).ok()
    })
}

fn bit(i: usize) -> u64 {
    u32::try_from(i)
        .ok()
        .and_then(|i| 1u64.checked_shl(i))
        .unwrap_or(0)
}

/// Clears the bit of every candidate that `needs` and for which `keep` is false.
fn filter(
    rules: &[Rule],
    candidates: &mut u64,
    needs: impl Fn(&Rule) -> bool,
    keep: impl Fn(&Rule) -> bool,
) {
    for j in bits(*candidates) {
        if let Some(r) = rules.get(j) {
            if needs(r) && !keep(r) {
                *candidates &= !bit(j);
            }
        }
    }
}

impl RuleSet {
    /// What the rules whose cheap fields match a request may ask (the union of their
    /// [`Rule::needs`]): a caller that must learn the expensive facts before evaluating (the
    /// driver, whose kernel queries may not run under the matcher's frames) asks exactly these.
    #[must_use]
    pub fn candidate_needs(
        &self,
        op: OffloadOp,
        requestor: RequestorMode,
        length: u64,
        volume: &VolumeNames<'_>,
    ) -> Needs {
        self.rules()
            .iter()
            .filter(|r| cheap_match(r, op, requestor, length, volume))
            .fold(Needs::empty(), |n, r| n | r.needs())
    }

    /// The first rule that matches `subject`, with its index and action; `None` when no rule
    /// matches (the volume's mode then applies). With no rules, returns at once, asking the
    /// subject nothing.
    pub fn evaluate<S: RuleSubject + ?Sized>(&self, subject: &mut S) -> Option<(usize, Action)> {
        let rules = self.rules();
        if rules.is_empty() {
            return None;
        }
        let mut candidates = {
            let (op, requestor, length) = (subject.op(), subject.requestor(), subject.length());
            let volume = subject.volume();
            // `zip` with the bounded index range, not `enumerate` (whose counter is an addition
            // the compiler cannot prove free of overflow: a panic site under overflow checks).
            (0..RuleSet::CAPACITY)
                .zip(rules)
                .filter(|(_, r)| cheap_match(r, op, requestor, length, &volume))
                .fold(0u64, |m, (i, _)| m | bit(i))
        };
        let (mut size_asked, mut process_asked, mut path_asked) = (false, false, false);
        loop {
            let first = bits(candidates).next()?;
            let rule = rules.get(first)?;
            if rule.size.is_bounded() && !size_asked {
                size_asked = true;
                let size = subject.file_size();
                filter(
                    rules,
                    &mut candidates,
                    |r| r.size.is_bounded(),
                    |r| size.is_some_and(|s| r.size.contains(s)),
                );
            } else if rule.process.is_some() && !process_asked {
                process_asked = true;
                let image = subject.process_image().map(final_component);
                filter(
                    rules,
                    &mut candidates,
                    |r| r.process.is_some(),
                    |r| {
                        image.is_some_and(|name| {
                            r.process.as_ref().is_some_and(|p| eq_fold(name, p.units()))
                        })
                    },
                );
            } else if (rule.path.is_some() || rule.ext.is_some()) && !path_asked {
                path_asked = true;
                let path = subject.file_path();
                filter(
                    rules,
                    &mut candidates,
                    |r| r.path.is_some() || r.ext.is_some(),
                    |r| path.is_some_and(|p| path_match(r, p)),
                );
            } else {
                return Some((first, rule.action));
            }
        }
    }
}
