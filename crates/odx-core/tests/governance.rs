//! Issue 15, the core half: rules (one test per match field, rule order, laziness, every parse
//! error with its line and field, limits, round trip) and the decision journal (single-thread
//! semantics, overrun, two-phase completion, a multi-threaded torn-record check).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use odx_core::governance::journal::{STATUS_PENDING, ShortName};
use odx_core::governance::parse::Snippet;
use odx_core::governance::*;
use odx_core::iomgr::RequestorMode;
use odx_core::policy::PolicyMode;
use odx_core::validate::Check;
use odx_core::{NtStatus, OffloadOp};
use proptest::prelude::*;

fn w(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

#[derive(Default, Debug)]
struct Calls {
    cheap: Cell<u32>,
    process: u32,
    path: u32,
    size: u32,
}

/// A request with every field settable, counting every query.
#[derive(Debug)]
struct Subject {
    op: OffloadOp,
    requestor: RequestorMode,
    length: u64,
    device: Vec<u16>,
    dos: Vec<u16>,
    guid: Vec<u16>,
    process: Option<Vec<u16>>,
    path: Option<Vec<u16>>,
    size: Option<u64>,
    calls: Calls,
}

impl Subject {
    fn new() -> Self {
        Self {
            op: OffloadOp::Write,
            requestor: RequestorMode::User,
            length: 1 << 20,
            device: w("\\Device\\HarddiskVolume3"),
            dos: w("D:"),
            guid: w("\\??\\Volume{0b7d6c1e-1111-2222-3333-444455556666}\\"),
            process: Some(w(
                "\\Device\\HarddiskVolume2\\Windows\\System32\\Robocopy.exe",
            )),
            path: Some(w("\\Backups\\Daily\\db.VHDX")),
            size: Some(10 << 20),
            calls: Calls::default(),
        }
    }
    fn lazy_calls(&self) -> (u32, u32, u32) {
        (self.calls.process, self.calls.path, self.calls.size)
    }
}

impl RuleSubject for Subject {
    fn op(&self) -> OffloadOp {
        self.calls.cheap.set(self.calls.cheap.get() + 1);
        self.op
    }
    fn requestor(&self) -> RequestorMode {
        self.calls.cheap.set(self.calls.cheap.get() + 1);
        self.requestor
    }
    fn length(&self) -> u64 {
        self.calls.cheap.set(self.calls.cheap.get() + 1);
        self.length
    }
    fn volume(&self) -> VolumeNames<'_> {
        self.calls.cheap.set(self.calls.cheap.get() + 1);
        VolumeNames {
            device: &self.device,
            dos: &self.dos,
            guid: &self.guid,
        }
    }
    fn process_image(&mut self) -> Option<&[u16]> {
        self.calls.process += 1;
        self.process.as_deref()
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        self.calls.path += 1;
        self.path.as_deref()
    }
    fn file_size(&mut self) -> Option<u64> {
        self.calls.size += 1;
        self.size
    }
}

fn set(lines: &[&str]) -> RuleSet {
    RuleSet::try_parse_lines(lines.iter().copied()).unwrap()
}

/// Whether the one-rule set `rule` matches `subject`.
fn matches(rule: &str, subject: &mut Subject) -> bool {
    let s = set(&[rule]);
    match s.evaluate(subject) {
        Some((0, a)) => {
            assert_eq!(a, s.get(0).unwrap().action);
            true
        }
        None => false,
        other => panic!("{other:?}"),
    }
}

fn with(f: impl FnOnce(&mut Subject)) -> Subject {
    let mut s = Subject::new();
    f(&mut s);
    s
}

// ---- one test per match field -----------------------------------------------------------------

#[test]
fn op_matches_read_write_or_any() {
    assert!(matches("veto op=write", &mut Subject::new()));
    assert!(!matches("veto op=read", &mut Subject::new()));
    assert!(matches(
        "veto op=READ",
        &mut with(|s| s.op = OffloadOp::Read)
    ));
    assert!(matches(
        "veto op=any",
        &mut with(|s| s.op = OffloadOp::Read)
    ));
    assert!(matches("veto", &mut Subject::new()));
}

#[test]
fn requestor_matches_user_kernel_or_any() {
    assert!(matches("veto requestor=user", &mut Subject::new()));
    assert!(!matches("veto requestor=kernel", &mut Subject::new()));
    let kernel = || with(|s| s.requestor = RequestorMode::Kernel);
    assert!(matches("veto requestor=kernel", &mut kernel()));
    assert!(!matches("veto requestor=user", &mut kernel()));
    assert!(matches("veto requestor=any", &mut kernel()));
}

#[test]
fn volume_matches_any_of_its_names_case_insensitively() {
    for yes in [
        "veto volume=D:",
        "veto volume=d:",
        "veto volume=d:\\",
        "veto volume=\\device\\harddiskvolume3",
        "veto volume=\\DEVICE\\HARDDISKVOLUME3\\",
        "veto volume=\\??\\Volume{0B7D6C1E-1111-2222-3333-444455556666}",
        "veto volume=any",
    ] {
        assert!(matches(yes, &mut Subject::new()), "{yes}");
    }
    for no in [
        "veto volume=E:",
        "veto volume=\\Device\\HarddiskVolume30",
        "veto volume=\\Device\\HarddiskVolume",
        "veto volume=D",
    ] {
        assert!(!matches(no, &mut Subject::new()), "{no}");
    }
    // A name the volume does not have (empty) matches no rule.
    let mut no_dos = with(|s| s.dos.clear());
    assert!(!matches("veto volume=D:", &mut no_dos));
    assert!(matches(
        "veto volume=\\Device\\HarddiskVolume3",
        &mut no_dos
    ));
}

#[test]
fn process_matches_the_image_file_name_case_insensitively() {
    assert!(matches("veto process=robocopy.exe", &mut Subject::new()));
    assert!(matches("veto process=ROBOCOPY.EXE", &mut Subject::new()));
    assert!(!matches("veto process=robocopy", &mut Subject::new()));
    assert!(!matches("veto process=copy.exe", &mut Subject::new()));
    assert!(matches(
        "veto process=robocopy.exe",
        &mut with(|s| s.process = Some(w("robocopy.exe")))
    ));
    // Latin-1 and other simple one-to-one mappings fold too.
    let mut accented = with(|s| s.process = Some(w("C:\\Tools\\Sauvegarde-ÉTÉ.exe")));
    assert!(matches("veto process=sauvegarde-été.EXE", &mut accented));
    // The image name could not be learnt: the rule does not match.
    assert!(!matches(
        "veto process=robocopy.exe",
        &mut with(|s| s.process = None)
    ));
}

#[test]
fn path_matches_a_prefix_of_whole_components_case_insensitively() {
    for yes in [
        "veto path=\\",
        "veto path=\\Backups",
        "veto path=\\backups\\",
        "veto path=\\BACKUPS\\daily",
        "veto path=\\Backups\\Daily\\db.vhdx",
    ] {
        assert!(matches(yes, &mut Subject::new()), "{yes}");
    }
    for no in [
        "veto path=\\Back",
        "veto path=\\Backups\\Dai",
        "veto path=\\Other",
        "veto path=\\Backups\\Daily\\db.vhdx\\",
    ] {
        assert!(!matches(no, &mut Subject::new()), "{no}");
    }
    assert!(!matches(
        "veto path=\\Backups",
        &mut with(|s| s.path = Some(w("\\BackupsOld\\x")))
    ));
    // A stream name is not part of the path.
    let mut stream = with(|s| s.path = Some(w("\\Backups:alt:$DATA")));
    assert!(matches("veto path=\\Backups", &mut stream));
    let mut greek = with(|s| s.path = Some(w("\\ΑΡΧΕΊΑ\\x")));
    assert!(matches("veto path=\\αρχεία\\", &mut greek));
    assert!(!matches(
        "veto path=\\Backups",
        &mut with(|s| s.path = None)
    ));
}

#[test]
fn ext_matches_the_end_of_the_file_name_case_insensitively() {
    assert!(matches("veto ext=.vhdx", &mut Subject::new()));
    assert!(matches("veto ext=VHDX", &mut Subject::new()));
    assert!(
        !matches("veto ext=.db.vhdx", &mut Subject::new()),
        "longer than the name"
    );
    let mut tar = with(|s| s.path = Some(w("\\x\\logs.TAR.gz")));
    assert!(matches("veto ext=.tar.gz", &mut tar));
    assert!(!matches("veto ext=.tar", &mut tar));
    assert!(!matches("veto ext=.vhd", &mut Subject::new()));
    assert!(!matches(
        "veto ext=.daily",
        &mut with(|s| s.path = Some(w("\\Backups.daily\\x")))
    ));
    let mut stream = with(|s| s.path = Some(w("\\a\\b.VHDX::$DATA")));
    assert!(matches("veto ext=.vhdx", &mut stream));
    assert!(matches(
        "veto path=\\Backups ext=.vhdx",
        &mut Subject::new()
    ));
    assert!(!matches("veto path=\\Other ext=.vhdx", &mut Subject::new()));
    assert!(!matches("veto ext=.vhdx", &mut with(|s| s.path = None)));
}

#[test]
fn length_bounds_are_inclusive() {
    let len = |n| with(|s| s.length = n);
    assert!(matches("veto min-length=1M", &mut len(1 << 20)));
    assert!(!matches("veto min-length=1M", &mut len((1 << 20) - 1)));
    assert!(matches("veto max-length=1M", &mut len(1 << 20)));
    assert!(!matches("veto max-length=1M", &mut len((1 << 20) + 1)));
    assert!(matches("veto min-length=4K max-length=4K", &mut len(4096)));
    assert!(!matches("veto min-length=4K max-length=4K", &mut len(4097)));
}

#[test]
fn size_bounds_are_inclusive_and_an_unknown_size_matches_no_size_rule() {
    let size = |n| with(|s| s.size = Some(n));
    assert!(matches("monitor max-size=262143", &mut size(262_143)));
    assert!(!matches("monitor max-size=262143", &mut size(256 << 10)));
    assert!(matches("enforce min-size=256K", &mut size(256 << 10)));
    assert!(!matches(
        "enforce min-size=256K",
        &mut size((256 << 10) - 1)
    ));
    assert!(!matches(
        "monitor max-size=256K",
        &mut with(|s| s.size = None)
    ));
    assert!(!matches("monitor min-size=0", &mut with(|s| s.size = None)));
}

#[test]
fn every_field_together() {
    let rule = "veto op=write requestor=user volume=D: process=robocopy.exe path=\\Backups\\ \
                ext=.vhdx min-length=1M max-length=1G min-size=1M max-size=1T";
    assert!(matches(rule, &mut Subject::new()));
    assert!(!matches(rule, &mut with(|s| s.length = 1 << 30 | 1)));
}

// ---- order -------------------------------------------------------------------------------------

#[test]
fn the_first_matching_rule_wins() {
    let s = set(&[
        "monitor process=backup.exe",
        "veto process=robocopy.exe",
        "enforce",
        "monitor op=write",
    ]);
    assert_eq!(s.evaluate(&mut Subject::new()), Some((1, PolicyMode::Veto)));
    // A later broader rule does not override an earlier narrower one...
    let s = set(&["veto ext=.vhdx", "monitor"]);
    assert_eq!(s.evaluate(&mut Subject::new()), Some((0, PolicyMode::Veto)));
    // ...and an earlier broader one shadows a later narrower one.
    let s = set(&["monitor", "veto ext=.vhdx"]);
    assert_eq!(
        s.evaluate(&mut Subject::new()),
        Some((0, PolicyMode::Monitor))
    );
    // Nothing matches: the volume's mode applies.
    let s = set(&[
        "veto op=read",
        "veto process=backup.exe",
        "veto max-size=4K",
    ]);
    assert_eq!(s.evaluate(&mut Subject::new()), None);
    assert_eq!(RuleSet::new().evaluate(&mut Subject::new()), None);
}

#[test]
fn small_files_are_monitored_and_large_ones_enforced() {
    let s = set(&["monitor max-size=262143  # under 256 KiB", "enforce"]);
    let mut small = with(|s| s.size = Some(4096));
    assert_eq!(s.evaluate(&mut small), Some((0, PolicyMode::Monitor)));
    let mut large = with(|s| s.size = Some(1 << 30));
    assert_eq!(s.evaluate(&mut large), Some((1, PolicyMode::Enforce)));
}

// ---- laziness ----------------------------------------------------------------------------------

#[test]
fn no_rules_ask_nothing() {
    let mut s = Subject::new();
    assert_eq!(RuleSet::new().evaluate(&mut s), None);
    assert_eq!(s.lazy_calls(), (0, 0, 0));
    assert_eq!(s.calls.cheap.get(), 0);
}

#[test]
fn a_process_rule_never_asks_for_the_path_or_size() {
    let rules = set(&["veto process=robocopy.exe"]);
    for process in [Some(w("robocopy.exe")), Some(w("other.exe")), None] {
        let mut s = with(|s| s.process = process.clone());
        rules.evaluate(&mut s);
        assert_eq!(s.lazy_calls(), (1, 0, 0), "{process:?}");
    }
}

#[test]
fn a_rule_whose_cheap_fields_fail_asks_nothing_lazy() {
    let rules = set(&["veto op=read process=a.exe path=\\x ext=.y max-size=1K"]);
    let mut s = Subject::new();
    assert_eq!(rules.evaluate(&mut s), None);
    assert_eq!(s.lazy_calls(), (0, 0, 0));
}

#[test]
fn each_query_is_made_at_most_once_per_evaluation() {
    let mut lines = Vec::new();
    for i in 0..20 {
        lines.push(format!("veto process=p{i}.exe path=\\p{i} min-size=1"));
    }
    lines.push("monitor".to_string());
    let rules = RuleSet::try_parse_lines(lines.iter().map(String::as_str)).unwrap();
    let mut s = with(|s| s.process = Some(w("p19.exe")));
    assert_eq!(rules.evaluate(&mut s), Some((20, PolicyMode::Monitor)));
    assert_eq!(s.lazy_calls(), (1, 1, 1));
    // Failing queries are not retried either.
    let mut s = with(|s| {
        s.process = None;
        s.size = None;
    });
    assert_eq!(rules.evaluate(&mut s), Some((20, PolicyMode::Monitor)));
    assert_eq!(s.lazy_calls(), (0, 0, 1));
}

#[test]
fn a_match_stops_before_later_rules_queries() {
    let rules = set(&[
        "veto process=robocopy.exe",
        "veto path=\\x",
        "veto min-size=1",
    ]);
    let mut s = Subject::new();
    assert_eq!(rules.evaluate(&mut s), Some((0, PolicyMode::Veto)));
    assert_eq!(s.lazy_calls(), (1, 0, 0));
    // Rule 0 is only cheap: nothing lazy at all.
    let rules = set(&["monitor op=write", "veto process=robocopy.exe"]);
    let mut s = Subject::new();
    assert_eq!(rules.evaluate(&mut s), Some((0, PolicyMode::Monitor)));
    assert_eq!(s.lazy_calls(), (0, 0, 0));
}

#[test]
fn needs_summarise_the_set() {
    let mut s = RuleSet::new();
    assert_eq!(s.needs(), Needs::empty());
    s.push(parse_rule("veto op=read volume=D: min-length=4K").unwrap());
    assert_eq!(s.needs(), Needs::empty());
    s.push(parse_rule("veto ext=.vhdx").unwrap());
    assert!(s.needs_path() && !s.needs_process() && !s.needs_size());
    s.push(parse_rule("veto process=a.exe max-size=1M").unwrap());
    assert_eq!(s.needs(), Needs::all());
    s.remove(1);
    assert_eq!(s.needs(), Needs::PROCESS | Needs::SIZE);
    s.remove(1);
    assert_eq!(s.needs(), Needs::empty());
    assert_eq!(s.len(), 1);
}

#[test]
fn insert_and_remove_keep_the_order() {
    let mut s = set(&["veto op=read", "veto op=write"]);
    assert!(s.insert(1, parse_rule("monitor").unwrap()));
    assert!(s.insert(3, parse_rule("enforce").unwrap()));
    assert!(!s.insert(5, parse_rule("enforce").unwrap()));
    let text: Vec<String> = s.rules().iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        ["veto op=read", "monitor", "veto op=write", "enforce"]
    );
    assert_eq!(s.remove(0).unwrap().to_string(), "veto op=read");
    assert_eq!(s.remove(3), None);
    assert_eq!(s.to_string(), "monitor\nveto op=write\nenforce\n");
}

// ---- parse errors ------------------------------------------------------------------------------

fn snip(s: &str) -> Snippet {
    Snippet::new(s)
}

/// Every error, each behind a blank line, a comment and a good rule (so on line 4), through the
/// strict loader; its text names the line and the field.
#[test]
fn every_parse_error_names_its_line_and_field() {
    use Field::*;
    use RuleError::*;
    let long = |n| "x".repeat(n);
    let cases: Vec<(String, RuleError, &str)> = vec![
        (
            "forbid op=read".into(),
            UnknownAction(snip("forbid")),
            "unknown action 'forbid'",
        ),
        (
            "veto op".into(),
            NotKeyValue(snip("op")),
            "'op' is not key=value",
        ),
        (
            "veto op =read".into(),
            NotKeyValue(snip("op")),
            "'op' is not key=value",
        ),
        (
            "veto proces=a.exe".into(),
            UnknownKey(snip("proces")),
            "unknown key 'proces'",
        ),
        (
            "veto op=read op=write".into(),
            DuplicateKey(Op),
            "op is given twice",
        ),
        (
            "veto OP=read op=write".into(),
            DuplicateKey(Op),
            "op is given twice",
        ),
        (
            "veto path=".into(),
            EmptyValue(Path),
            "path has an empty value",
        ),
        (
            "veto process=\"\"".into(),
            EmptyValue(Process),
            "process has an empty value",
        ),
        (
            "veto op=copy".into(),
            BadValue(Op),
            "bad value for op (expected read, write or any)",
        ),
        (
            "veto requestor=system".into(),
            BadValue(Requestor),
            "bad value for requestor",
        ),
        (
            "veto volume=D:|".into(),
            BadValue(Volume),
            "bad value for volume",
        ),
        (
            "veto process=bin\\a.exe".into(),
            BadValue(Process),
            "bad value for process",
        ),
        (
            "veto process=a*.exe".into(),
            BadValue(Process),
            "bad value for process",
        ),
        (
            "veto path=Backups".into(),
            BadValue(Path),
            "bad value for path",
        ),
        (
            "veto path=\\a/b".into(),
            BadValue(Path),
            "bad value for path",
        ),
        (
            "veto path=\\a:b".into(),
            BadValue(Path),
            "bad value for path",
        ),
        (
            "veto path=\\a\"b".into(),
            BadValue(Path),
            "bad value for path",
        ),
        (
            "veto path=\"\\a\"b".into(),
            BadValue(Path),
            "bad value for path",
        ),
        ("veto ext=.".into(), BadValue(Ext), "bad value for ext"),
        ("veto ext=\\x".into(), BadValue(Ext), "bad value for ext"),
        (
            "veto min-length=1X".into(),
            BadValue(MinLength),
            "bad value for min-length",
        ),
        (
            "veto max-length=-1".into(),
            BadValue(MaxLength),
            "bad value for max-length",
        ),
        (
            "veto min-size=99999999999T".into(),
            BadValue(MinSize),
            "bad value for min-size",
        ),
        (
            "veto max-size=1.5M".into(),
            BadValue(MaxSize),
            "bad value for max-size",
        ),
        (
            "veto path=\"\\VM Images".into(),
            UnterminatedQuote(Path),
            "the value of path has no closing \"",
        ),
        (
            format!("veto volume={}", long(65)),
            TooLong {
                field: Volume,
                limit: 64,
            },
            "volume is longer than 64 UTF-16 units",
        ),
        (
            format!("veto process={}", long(65)),
            TooLong {
                field: Process,
                limit: 64,
            },
            "process is longer than 64",
        ),
        (
            format!("veto path=\\{}", long(260)),
            TooLong {
                field: Path,
                limit: 260,
            },
            "path is longer than 260",
        ),
        (
            format!("veto ext=.{}", long(16)),
            TooLong {
                field: Ext,
                limit: 16,
            },
            "ext is longer than 16",
        ),
        (
            format!("veto ext={}", long(16)),
            TooLong {
                field: Ext,
                limit: 16,
            },
            "ext is longer than 16",
        ),
        (
            "veto min-length=2M max-length=1M".into(),
            MinAboveMax {
                min: MinLength,
                max: MaxLength,
            },
            "min-length is above max-length",
        ),
        (
            "veto max-size=1K min-size=1025".into(),
            MinAboveMax {
                min: MinSize,
                max: MaxSize,
            },
            "min-size is above max-size",
        ),
    ];
    for (line, error, text) in cases {
        assert_eq!(parse_rule(&line), Err(error), "{line}");
        let lines = ["", "# a comment", "enforce op=read", line.as_str(), "veto"];
        let e = RuleSet::try_parse_lines(lines).unwrap_err();
        assert_eq!(e, LineError { line: 4, error }, "{line}");
        let shown = e.to_string();
        assert!(shown.starts_with("line 4: "), "{shown}");
        assert!(shown.contains(text), "{shown:?} lacks {text:?}");
        if let Some(field) = error.field() {
            assert!(shown.contains(field.key()), "{shown}");
        }
        // The lenient loader skips it and reports the same.
        let (set, report) = RuleSet::parse_lines(lines);
        assert_eq!(set.len(), 2, "{line}");
        assert_eq!(report.accepted, 2);
        assert_eq!(report.rejected, 1);
        assert_eq!(report.errors(), &[e]);
    }
}

#[test]
fn names_at_their_limit_are_taken() {
    let x = |n| "x".repeat(n);
    assert!(parse_rule(&format!("veto volume={}", x(64))).is_ok());
    assert!(parse_rule(&format!("veto process={}", x(64))).is_ok());
    assert!(parse_rule(&format!("veto path=\\{}", x(259))).is_ok());
    assert!(parse_rule(&format!("veto ext=.{}", x(15))).is_ok());
    // Limits are in UTF-16 units: a character outside the BMP takes two.
    assert!(parse_rule(&format!("veto process={}", "😀".repeat(32))).is_ok());
    assert_eq!(
        parse_rule(&format!("veto process=a{}", "😀".repeat(32))),
        Err(RuleError::TooLong {
            field: Field::Process,
            limit: 64
        })
    );
}

#[test]
fn blank_lines_comments_and_empty_rules() {
    assert_eq!(parse_rule(""), Err(RuleError::Empty));
    assert_eq!(parse_rule("   \t"), Err(RuleError::Empty));
    assert_eq!(parse_rule("  # veto"), Err(RuleError::Empty));
    assert_eq!(
        RuleError::Empty.to_string(),
        "empty rule (a blank line or a comment)"
    );
    // A trailing comment; a `#` inside a value is part of it.
    let r = parse_rule("veto path=\\a#b # the rest is ignored op=read").unwrap();
    assert_eq!(r.path.unwrap().to_string(), "\\a#b");
    assert_eq!(r.op, None);
    // Case-insensitive action and keys; blanks of any ASCII kind.
    let r = parse_rule("\tVETO\tOP=Write  Process=\"My Backup.exe\"\r\n").unwrap();
    assert_eq!(r.action, PolicyMode::Veto);
    assert_eq!(r.op, Some(OffloadOp::Write));
    assert_eq!(r.process.unwrap().to_string(), "My Backup.exe");
    assert_eq!(parse_rule("veto").unwrap(), Rule::any(PolicyMode::Veto));
}

#[test]
fn too_many_rules_are_refused_with_the_line_and_the_old_rules_kept() {
    let lines: Vec<String> = (0..=RuleSet::CAPACITY)
        .map(|i| format!("veto min-length={i}"))
        .collect();
    let too_many = || lines.iter().map(String::as_str);
    let e = RuleSet::try_parse_lines(too_many()).unwrap_err();
    assert_eq!(
        e,
        LineError {
            line: 65,
            error: RuleError::TooManyRules { capacity: 64 }
        }
    );
    assert_eq!(
        e.to_string(),
        "line 65: too many rules (a rule set holds 64)"
    );
    let (set, report) = RuleSet::parse_lines(too_many());
    assert_eq!((set.len(), report.accepted, report.rejected), (64, 64, 1));
    assert_eq!(report.errors(), &[e]);

    // The port's atomic replace: a failed load leaves the previous rules.
    let mut current = set_of(&["veto process=robocopy.exe"]);
    let before = current.clone();
    assert_eq!(current.try_load_lines(too_many()), Err(e));
    assert_eq!(current, before);
    let bad = ["monitor", "veto op=sideways"];
    assert_eq!(
        current.try_load_lines(bad),
        Err(LineError {
            line: 2,
            error: RuleError::BadValue(Field::Op)
        })
    );
    assert_eq!(current, before);
    assert_eq!(
        current.try_load_lines(["monitor", "# c", "veto op=read"]),
        Ok(2)
    );
    assert_eq!(current.to_string(), "monitor\nveto op=read\n");
}

fn set_of(lines: &[&str]) -> RuleSet {
    set(lines)
}

#[test]
fn a_lenient_load_keeps_the_first_errors_and_counts_them_all() {
    let mut lines = vec!["veto"];
    lines.extend(std::iter::repeat_n("veto op=up", 11));
    lines.push("monitor");
    let (set, report) = RuleSet::parse_lines(lines);
    assert_eq!(set.len(), 2);
    assert_eq!(report.rejected, 11);
    assert_eq!(report.errors().len(), ParseReport::KEPT);
    let numbers: Vec<usize> = report.errors().iter().map(|e| e.line).collect();
    assert_eq!(numbers, (2..=9).collect::<Vec<_>>());
    let text = report.to_string();
    assert!(
        text.starts_with("2 rules, 11 lines rejected\n  line 2: bad value for op"),
        "{text}"
    );
    assert!(text.ends_with("(3 more)"), "{text}");
    let mut reused = set;
    assert!(reused.load_lines(["veto", "", "#"]).is_clean());
    assert_eq!(reused.len(), 1);
}

// ---- text round trip ---------------------------------------------------------------------------

#[test]
fn display_writes_the_syntax() {
    let r = parse_rule(
        "veto max-size=262144 volume=D: ext=vhdx process=\"my tool.exe\" op=write path=\"\\VM Images\\\" min-length=1048576 requestor=kernel",
    )
    .unwrap();
    assert_eq!(
        r.to_string(),
        "veto op=write requestor=kernel volume=D: process=\"my tool.exe\" path=\"\\VM Images\\\" ext=.vhdx min-length=1M max-size=256K"
    );
    assert_eq!(parse_rule(&r.to_string()), Ok(r));
    assert_eq!(
        parse_rule("monitor op=any volume=ANY requestor=any")
            .unwrap()
            .to_string(),
        "monitor"
    );
}

fn name_strategy(chars: &'static str, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[{chars}]{{1,{max}}}")).unwrap()
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    let bounds =
        (any::<Option<u64>>(), any::<Option<u64>>(), any::<bool>()).prop_map(|(a, b, small)| {
            let cut = |v: Option<u64>| {
                if small {
                    v.map(|v| (v % 8) << (v % 41))
                } else {
                    v
                }
            };
            let (a, b) = (cut(a), cut(b));
            match (a, b) {
                (Some(x), Some(y)) => Bounds::new(Some(x.min(y)), Some(x.max(y))).unwrap(),
                _ => Bounds::new(a, b).unwrap(),
            }
        });
    (
        prop::sample::select(PolicyMode::ALL.to_vec()),
        prop::option::of(prop::sample::select(vec![
            OffloadOp::Read,
            OffloadOp::Write,
        ])),
        prop::option::of(prop::sample::select(vec![
            RequestorMode::User,
            RequestorMode::Kernel,
        ])),
        prop::option::of(
            name_strategy("a-zA-Z0-9:{}?\\\\ éΣ.-", 64)
                .prop_filter("any", |v| !v.eq_ignore_ascii_case("any")),
        ),
        prop::option::of(name_strategy("a-zA-Z0-9 éΣ._#=-", 64)),
        prop::option::of(
            name_strategy("a-zA-Z0-9\\\\ éΣ._#=-", 259).prop_map(|p| format!("\\{p}")),
        ),
        prop::option::of(name_strategy("a-zA-Z0-9éΣ._", 15).prop_map(|e| format!(".{e}"))),
        bounds.clone(),
        bounds,
    )
        .prop_map(
            |(action, op, requestor, volume, process, path, ext, length, size)| Rule {
                action,
                op,
                requestor,
                volume: volume.map(|v| Name::new(&v).unwrap()),
                process: process.map(|v| Name::new(&v).unwrap()),
                path: path.map(|v| Name::new(&v).unwrap()),
                ext: ext.map(|v| Name::new(&v).unwrap()),
                length,
                size,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn display_then_parse_is_the_identity(rule in rule_strategy()) {
        let text = rule.to_string();
        prop_assert_eq!(parse_rule(&text), Ok(rule), "{}", text);
    }

    #[test]
    fn any_line_parses_or_fails_without_panicking_and_accepted_rules_round_trip(line in "\\PC{0,120}") {
        if let Ok(rule) = parse_rule(&line) {
            prop_assert_eq!(parse_rule(&rule.to_string()), Ok(rule));
        }
    }

    #[test]
    fn keyword_soup_round_trips(line in "(veto|monitor|enforce)( (op|requestor|volume|process|path|ext|min-length|max-length|min-size|max-size)=(read|write|any|user|kernel|D:|\\\\a|\\\\a b|\"\\\\a b\"|\\.x|1K|0|3M|x\\.exe)){0,6}") {
        if let Ok(rule) = parse_rule(&line) {
            prop_assert_eq!(parse_rule(&rule.to_string()), Ok(rule));
        }
    }
}

// ---- journal -----------------------------------------------------------------------------------

fn event<'a>(time: u64, process: &'a [u16], file: &'a [u16]) -> Event<'a> {
    Event {
        time,
        volume: 3,
        process_id: 4242,
        process_image: process,
        file_name: file,
        op: OffloadOp::Write,
        offset: 1 << 20,
        length: 8 << 20,
        rule: Some(2),
        decided_by: DecidedBy::Rule(2),
    }
}

fn page<const N: usize>(j: &Journal<N>, from: u64, n: usize) -> (Vec<Record>, PageResult) {
    let mut out = vec![Record::EMPTY; n];
    let r = j.read_page(from, &mut out);
    out.truncate(r.copied);
    (out, r)
}

#[test]
fn journal_records_every_field_and_pages_in_order() {
    let j = Journal::<8>::new();
    let process = w("\\Device\\HarddiskVolume2\\Windows\\System32\\robocopy.exe");
    let file = w("\\Backups\\Daily\\a-rather-long-directory-name\\and-a-long-file-name.vhdx");
    for t in 0..3u64 {
        let seq = j.record_completed(
            &event(100 + t, &process, &file),
            NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
            0,
        );
        assert_eq!(seq, t);
    }
    let (records, r) = page(&j, 0, 2);
    assert_eq!(
        r,
        PageResult {
            next_seq: 2,
            copied: 2,
            lost: 0
        }
    );
    let rec = records[0];
    assert_eq!(rec.seq, 0);
    assert_eq!(rec.time, 100);
    assert_eq!(rec.volume, 3);
    assert_eq!(rec.process_id, 4242);
    assert_eq!(rec.process_name.units(), &w("robocopy.exe")[..]);
    assert!(!rec.process_name.is_truncated());
    assert_eq!(rec.file_name.units(), &file[file.len() - 48..]);
    assert!(rec.file_name.is_truncated());
    assert_eq!(rec.op, OffloadOp::Write);
    assert_eq!((rec.offset, rec.length), (1 << 20, 8 << 20));
    assert_eq!(rec.rule, Some(2));
    assert_eq!(rec.decided_by, DecidedBy::Rule(2));
    assert!(rec.completed);
    assert_eq!(rec.status, NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED);
    assert_eq!(records[1].time, 101);
    let (records, r) = page(&j, r.next_seq, 10);
    assert_eq!(
        r,
        PageResult {
            next_seq: 3,
            copied: 1,
            lost: 0
        }
    );
    assert_eq!(records[0].time, 102);
    // Caught up: nothing more, same position.
    let (_, r) = page(&j, 3, 10);
    assert_eq!(
        r,
        PageResult {
            next_seq: 3,
            copied: 0,
            lost: 0
        }
    );
    // A short process name and no rule.
    let mut e = event(7, &[], &[]);
    e.rule = None;
    e.process_image = &process[..5];
    e.decided_by = DecidedBy::Check(Check::Alignment);
    j.record_completed(&e, NtStatus::STATUS_INVALID_PARAMETER, 0);
    let (records, _) = page(&j, 3, 1);
    assert_eq!(records[0].rule, None);
    assert_eq!(records[0].decided_by, DecidedBy::Check(Check::Alignment));
    assert_eq!(
        records[0].process_name.units(),
        &process[1..5],
        "after the last backslash"
    );
    assert_eq!(records[0].file_name, ShortName::EMPTY);
}

#[test]
fn a_reused_slot_shows_only_the_new_records_names() {
    // A record writes only the words its names need; what an older record left in the slot
    // past the new names' lengths must never be read back.
    let j = Journal::<1>::new();
    let long_image = w(r"\Device\HarddiskVolume3\Windows\System32\robocopy.exe");
    let long_path = w(r"\Backups\2026\December\virtual-machines\server-01\disk-0.vhdx");
    j.record_completed(
        &event(1, &long_image, &long_path),
        NtStatus::STATUS_SUCCESS,
        1,
    );
    let short_image = w(r"\x.exe");
    let short_path = w(r"\a");
    j.record_completed(
        &event(2, &short_image, &short_path),
        NtStatus::STATUS_SUCCESS,
        2,
    );
    let (records, r) = page(&j, 1, 1);
    assert_eq!((r.copied, r.lost), (1, 0));
    assert_eq!(records[0].process_name.units(), &w("x.exe")[..]);
    assert_eq!(records[0].file_name.units(), &short_path[..]);
    // The whole name, padding included (`ShortName` compares all its units): zero past the
    // name in what the reader gets, not the older record's units.
    assert_eq!(records[0].process_name, ShortName::head(&w("x.exe")));
    assert_eq!(records[0].file_name, ShortName::tail(&short_path));
    // And a record with no names reads back empty.
    j.record_completed(&event(3, &[], &[]), NtStatus::STATUS_SUCCESS, 3);
    let (records, _) = page(&j, 2, 1);
    assert_eq!(records[0].process_name, ShortName::EMPTY);
    assert_eq!(records[0].file_name, ShortName::EMPTY);
}

#[test]
fn an_overrun_is_reported_as_lost_records() {
    let j = Journal::<4>::new();
    for t in 0..10 {
        j.record_completed(&event(t, &[], &[]), NtStatus::STATUS_SUCCESS, t);
    }
    let (records, r) = page(&j, 0, 16);
    assert_eq!(
        r,
        PageResult {
            next_seq: 10,
            copied: 4,
            lost: 6
        }
    );
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [6, 7, 8, 9]
    );
    assert_eq!(
        records.iter().map(|r| r.bytes_done).collect::<Vec<_>>(),
        [6, 7, 8, 9]
    );
    let (_, r) = page(&j, 5, 16);
    assert_eq!((r.copied, r.lost), (4, 1));
    assert_eq!(
        j.stats(),
        JournalStats {
            recorded: 10,
            dropped: 0,
            lost_completions: 0
        }
    );
    // Nothing is lost for a reader that keeps up.
    let j = Journal::<4>::new();
    let mut next = 0;
    for t in 0..10 {
        j.record_completed(&event(t, &[], &[]), NtStatus::STATUS_SUCCESS, t);
        let (records, r) = page(&j, next, 4);
        assert_eq!((r.copied, r.lost), (1, 0));
        assert_eq!(records[0].seq, t);
        next = r.next_seq;
    }
}

#[test]
fn a_forwarded_record_is_completed_in_post_operation() {
    let j = Journal::<4>::new();
    let mut e = event(1, &[], &[]);
    e.decided_by = DecidedBy::Check(Check::Forward);
    let seq = j.record_forwarded(&e);
    let (records, _) = page(&j, 0, 1);
    assert!(!records[0].completed);
    assert_eq!(records[0].status, STATUS_PENDING);
    assert_eq!(records[0].bytes_done, 0);
    assert!(j.complete(seq, NtStatus::STATUS_SUCCESS, 8 << 20));
    let (records, _) = page(&j, 0, 1);
    assert!(records[0].completed);
    assert_eq!(records[0].status, NtStatus::STATUS_SUCCESS);
    assert_eq!(records[0].bytes_done, 8 << 20);
    assert_eq!(
        (records[0].volume, records[0].time),
        (3, 1),
        "the rest is unchanged"
    );
    // Twice, or for a record completed at once: refused and counted.
    assert!(!j.complete(seq, NtStatus::STATUS_SUCCESS, 1));
    let done = j.record_completed(&e, NtStatus::STATUS_SUCCESS, 0);
    assert!(!j.complete(done, NtStatus::STATUS_SUCCESS, 1));
    // Overwritten before its post-operation: lost, counted, and the new record untouched.
    let old = j.record_forwarded(&e);
    for _ in 0..4 {
        j.record_forwarded(&e);
    }
    assert!(!j.complete(old, NtStatus::STATUS_SUCCESS, 1));
    assert!(
        !j.complete(99, NtStatus::STATUS_SUCCESS, 1),
        "never written"
    );
    assert_eq!(j.stats().lost_completions, 4);
    let (records, r) = page(&j, old, 8);
    assert_eq!((r.copied, r.lost), (4, 1));
    assert!(records.iter().all(|r| !r.completed));
}

#[test]
fn a_zero_capacity_journal_records_nothing() {
    let j = Journal::<0>::new();
    let seq = j.record_forwarded(&event(1, &[], &[]));
    assert!(!j.complete(seq, NtStatus::STATUS_SUCCESS, 0));
    let (_, r) = page(&j, 0, 4);
    assert_eq!(
        r,
        PageResult {
            next_seq: 1,
            copied: 0,
            lost: 1
        }
    );
    assert_eq!(j.stats().dropped, 1);
}

/// Every field of a stress record follows from `key` (writer << 40 | counter), so a record
/// mixed from two writes cannot pass.
struct Expected {
    process: Vec<u16>,
    file: Vec<u16>,
}

fn expected(key: u64) -> Expected {
    Expected {
        process: w(&format!("\\bin\\tool-{key:x}-with-a-long-name.exe")),
        file: w(&format!(
            "\\data\\{key}\\{}\\file-{key:x}.bin",
            key.wrapping_mul(31)
        )),
    }
}

fn stress_event<'a>(key: u64, x: &'a Expected) -> Event<'a> {
    Event {
        time: key,
        volume: (key as u32) ^ 0xABCD,
        process_id: key ^ 0x5555_5555,
        process_image: &x.process,
        file_name: &x.file,
        op: if key % 3 == 0 {
            OffloadOp::Read
        } else {
            OffloadOp::Write
        },
        offset: key.wrapping_mul(3),
        length: key.wrapping_mul(7),
        rule: Some((key % 64) as u16),
        decided_by: DecidedBy::Rule((key % 64) as u16),
    }
}

fn final_status(key: u64) -> (NtStatus, u64) {
    (NtStatus((key as u32) | 1), key.wrapping_mul(5))
}

fn check(rec: &Record) {
    let key = rec.time;
    let x = expected(key);
    let e = stress_event(key, &x);
    assert_eq!(rec.volume, e.volume, "{rec:?}");
    assert_eq!(rec.process_id, e.process_id, "{rec:?}");
    assert_eq!(rec.op, e.op, "{rec:?}");
    assert_eq!((rec.offset, rec.length), (e.offset, e.length), "{rec:?}");
    assert_eq!(
        (rec.rule, rec.decided_by),
        (e.rule, e.decided_by),
        "{rec:?}"
    );
    assert_eq!(
        rec.process_name,
        ShortName::head(&x.process[5..]),
        "{rec:?}"
    );
    assert_eq!(rec.file_name, ShortName::tail(&x.file), "{rec:?}");
    if rec.completed {
        assert_eq!((rec.status, rec.bytes_done), final_status(key), "{rec:?}");
    } else {
        assert_eq!((rec.status, rec.bytes_done), (STATUS_PENDING, 0), "{rec:?}");
    }
}

fn stress<const N: usize>(journal: &Journal<N>, per_writer: u64) {
    let done = AtomicBool::new(false);
    let (copied, lost, next) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                scope.spawn(move || {
                    for i in 0..per_writer {
                        let key = t << 40 | i;
                        let x = expected(key);
                        let e = stress_event(key, &x);
                        let (status, bytes) = final_status(key);
                        if i % 2 == 0 {
                            journal.record_completed(&e, status, bytes);
                        } else {
                            let seq = journal.record_forwarded(&e);
                            journal.complete(seq, status, bytes);
                        }
                    }
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            let mut out = vec![Record::EMPTY; 17];
            let (mut next, mut copied, mut lost) = (0u64, 0u64, 0u64);
            loop {
                let finished = done.load(Ordering::Acquire);
                let r = journal.read_page(next, &mut out);
                assert!(r.next_seq >= next);
                for (k, rec) in out[..r.copied].iter().enumerate() {
                    assert!(rec.seq >= next && rec.seq < r.next_seq);
                    if k > 0 {
                        assert!(rec.seq > out[k - 1].seq);
                    }
                    check(rec);
                }
                copied += r.copied as u64;
                lost += r.lost;
                assert_eq!(
                    copied + lost,
                    r.next_seq,
                    "every sequence is copied or lost"
                );
                next = r.next_seq;
                if finished && r.copied == 0 && r.lost == 0 && next == journal.head() {
                    return (copied, lost, next);
                }
            }
        });
        for wr in writers {
            wr.join().unwrap();
        }
        done.store(true, Ordering::Release);
        reader.join().unwrap()
    });
    let stats = journal.stats();
    assert_eq!(next, 4 * per_writer);
    assert_eq!(stats.recorded, 4 * per_writer);
    assert!(copied > 0);
    eprintln!(
        "journal<{N}>: {copied} records read, {lost} lost, {} dropped by writers, {} completions lost",
        stats.dropped, stats.lost_completions
    );
    // After the writers: the last N records are all there, every one complete.
    let (records, r) = page(journal, 0, N);
    assert_eq!(r.copied, N.min(records.len()));
    for rec in &records {
        check(rec);
        assert!(rec.completed || journal.stats().lost_completions > 0);
    }
}

#[test]
fn four_writers_and_a_reader_never_see_a_torn_record() {
    let per_writer = if cfg!(debug_assertions) {
        40_000
    } else {
        400_000
    };
    stress(&Journal::<16>::new(), per_writer);
    stress(&*Box::new(Journal::<1024>::new()), per_writer);
}

#[test]
fn sets_compare_by_their_rules_only() {
    let mut a = set(&["veto process=x.exe", "monitor"]);
    let b = set(&["monitor"]);
    assert_ne!(a, b);
    a.remove(0);
    assert_eq!(a, b, "the stale slot past the end is not compared");
    a.clear();
    assert_eq!(a, RuleSet::new());
}

#[test]
fn memory_figures_in_the_docs() {
    // docs/governance-rules.md quotes these.
    assert_eq!(std::mem::size_of::<Rule>(), 904);
    assert_eq!(std::mem::size_of::<RuleSet>(), 57_872);
    assert_eq!(std::mem::size_of::<Journal<1024>>(), 204_824);
    assert_eq!(std::mem::size_of::<Record>(), 208);
}
