//! `odxctl`: explain offload status codes, run scenario files on the simulated stack, copy files
//! the way the Windows copy engine does, and a guided demo. See docs/odxctl.md.

mod codes;
mod copy_cmd;
mod demo;
mod diagnose;
mod diagnose_sim;
mod explain;
mod log_cmd;
mod port_cmd;
mod rules_cmd;
mod scenario_cmd;
mod text;
#[cfg(windows)]
mod windows;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// odxctl: what will an offloaded data transfer (ODX) do, and why not?
#[derive(Debug, Parser)]
#[command(name = "odxctl", version, about, long_about = None)]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Explain a status: a Win32 number (4440), hex (0x1158, 0xC000A2A1) or a STATUS_/ERROR_ name.
    Explain {
        /// The code.
        code: String,
    },
    /// Scenario files (docs/scenarios.md).
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Copy a file with the Windows copy engine's offload algorithm on the simulated stack.
    Copy(copy_cmd::CopyArgs),
    /// A guided run on the embedded in-memory stack: an ODX copy, then each refusal users meet.
    Demo,
    /// odxflt's statistics per volume (Windows: through \\OdxfltPort; elsewhere: the
    /// scenario's stack after its steps ran).
    Stats {
        /// Only this volume (index in odxflt's table); default: every volume and the sum.
        #[arg(long)]
        volume: Option<u32>,
        /// Run this scenario's steps on the simulated stack, then query its port.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// odxflt's policy: print it, or set it (enforce, monitor, veto) for one volume or, without
    /// --volume, for the default and every volume.
    Policy {
        /// enforce | monitor | veto; omitted: print the policy.
        mode: Option<String>,
        /// The volume (index in odxflt's table).
        #[arg(long)]
        volume: Option<u32>,
        /// Run this scenario's steps on the simulated stack, then query/set its port.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// odxflt's governance rules (docs/governance-rules.md): list, add, remove, load, save
    /// through \\OdxfltPort on Windows (replaced all or nothing: on any error odxflt keeps its
    /// rules), or on a scenario's simulated stack with --scenario (its [[rule]] tables; not
    /// persistent: a change lasts for the command only); check validates a file offline.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// odxflt's decision journal: every offload request, what decided it (rule, check or the
    /// volume's mode), its status and bytes; lost records counted. Windows: through
    /// \\OdxfltPort; --scenario: runs the scenario's steps and prints their records.
    Log {
        /// Keep reading new records (Windows; polls every second until interrupted). With
        /// --scenario the steps are all there is: prints them and exits.
        #[arg(long)]
        follow: bool,
        /// Run this scenario's steps on the simulated stack, then read its journal.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Every reason ODX will not happen from SRC to DST, ending with the culprit and the fix.
    /// Exit status 1 when a reason was found.
    Diagnose {
        /// Source file (Windows: a path; with --scenario: a [[file]] name).
        src: String,
        /// Destination file (optional).
        dst: Option<String>,
        /// The process that will copy (its image file name, robocopy.exe), for rules that name
        /// one; without it such rules are reported as not matching (the name is unknown).
        #[arg(long)]
        process: Option<String>,
        /// Probe this scenario's simulated stack ([volume], [[filter]], [[file]]) instead of
        /// Windows.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Print the rules in force, numbered (first match wins).
    List {
        /// Use this scenario's simulated stack (its [[rule]] tables, as loaded at start).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Insert RULE (`veto process=robocopy.exe`) at index N (default: after the last).
    Add {
        /// The rule, one argument (quote it).
        rule: String,
        /// Its index once inserted (0 = first).
        #[arg(long)]
        at: Option<usize>,
        /// Use this scenario's simulated stack (not persistent).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Remove rule N (`odxctl rules list` numbers them).
    Remove {
        /// The rule's index.
        index: usize,
        /// Use this scenario's simulated stack (not persistent).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Replace every rule with FILE's (one rule per line; # comments); all or nothing.
    Load {
        /// The rules file.
        file: PathBuf,
        /// Use this scenario's simulated stack (not persistent).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Write the rules in force to FILE (default: stdout), in the form `load` reads.
    Save {
        /// The file.
        file: Option<PathBuf>,
        /// Use this scenario's simulated stack.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Validate a rules file offline: every error with its line; exit status 2 if any.
    Check {
        /// The rules file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Run scenario files and report each step; exit 1 if an expectation fails, 2 if a file is
    /// malformed.
    Run {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Keep the volume's files as real files under this directory (host-files backend)
        /// instead of in memory.
        #[arg(long)]
        host_dir: Option<PathBuf>,
    },
}

/// An error with the exit status it deserves.
#[derive(Debug)]
pub struct Failure {
    /// Exit status.
    pub code: u8,
    /// One line.
    pub message: String,
}

impl Failure {
    /// Exit status 2: bad input (unknown code, malformed file, unreadable path).
    pub fn input(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::input(format!("{e:#}"))
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::input(e.to_string())
    }
}

/// What a command returns: its exit status, or a failure.
pub type CmdResult = Result<u8, Failure>;

/// Without `--scenario` on a system that is not Windows.
#[cfg(not(windows))]
fn needs_windows(command: &str) -> Failure {
    Failure::input(format!(
        "{command} talks to odxflt on Windows; elsewhere pass --scenario FILE to use the simulated stack"
    ))
}

fn stats(
    out: &mut dyn Write,
    volume: Option<u32>,
    scenario: Option<PathBuf>,
    json: bool,
) -> CmdResult {
    match scenario {
        Some(path) => {
            let mut stack = port_cmd::scenario_stack(&path)?;
            port_cmd::run_stats(out, &mut stack, volume, json)
        }
        #[cfg(windows)]
        None => {
            let mut port = windows::port::FilterPort::connect()?;
            port_cmd::run_stats(out, &mut port, volume, json)
        }
        #[cfg(not(windows))]
        None => Err(needs_windows("stats")),
    }
}

fn policy(
    out: &mut dyn Write,
    mode: Option<&str>,
    volume: Option<u32>,
    scenario: Option<PathBuf>,
    json: bool,
) -> CmdResult {
    match scenario {
        Some(path) => {
            let mut stack = port_cmd::scenario_stack(&path)?;
            port_cmd::run_policy(out, &mut stack, volume, mode, json)
        }
        #[cfg(windows)]
        None => {
            let mut port = windows::port::FilterPort::connect()?;
            port_cmd::run_policy(out, &mut port, volume, mode, json)
        }
        #[cfg(not(windows))]
        None => Err(needs_windows("policy")),
    }
}

/// The scenario's stack as odxflt starts on it (its [[rule]] strings loaded, no step run), with
/// the strings the load rejected reported on stderr.
fn rules_stack(path: &std::path::Path) -> Result<odx_sim::Stack<odx_sim::MemStore>, Failure> {
    let scenario =
        odx_sim::scenario::Scenario::load(path).map_err(|e| Failure::input(e.to_string()))?;
    let mut err = io::stderr().lock();
    for e in scenario.rule_load().errors() {
        let _ = writeln!(
            err,
            "odxctl: warning: {}: [[rule]] string {} skipped at load: {}",
            scenario.path, e.line, e.error
        );
    }
    scenario
        .build(odx_sim::MemStore::new())
        .map_err(|e| Failure::input(format!("{}: {e}", scenario.path)))
}

fn rules(out: &mut dyn Write, command: RulesCommand, json: bool) -> CmdResult {
    let (action, scenario) = match command {
        RulesCommand::Check { file } => return rules_cmd::check_file(out, &file, json),
        RulesCommand::List { scenario } => (rules_cmd::RulesAction::List, scenario),
        RulesCommand::Add { rule, at, scenario } => {
            (rules_cmd::RulesAction::Add { rule, at }, scenario)
        }
        RulesCommand::Remove { index, scenario } => {
            (rules_cmd::RulesAction::Remove { index }, scenario)
        }
        RulesCommand::Load { file, scenario } => (
            rules_cmd::RulesAction::Load {
                text: rules_cmd::read_rules_file(&file)?,
                name: file.display().to_string(),
            },
            scenario,
        ),
        RulesCommand::Save { file, scenario } => (rules_cmd::RulesAction::Save { file }, scenario),
    };
    match scenario {
        Some(path) => {
            let mut stack = rules_stack(&path)?;
            rules_cmd::run(out, &mut stack, &action, true, json)
        }
        #[cfg(windows)]
        None => {
            let mut port = windows::port::FilterPort::connect()?;
            rules_cmd::run(out, &mut port, &action, false, json)
        }
        #[cfg(not(windows))]
        None => Err(needs_windows("rules")),
    }
}

fn log(out: &mut dyn Write, follow: bool, scenario: Option<PathBuf>, json: bool) -> CmdResult {
    match scenario {
        Some(path) => {
            let mut stack = port_cmd::scenario_stack(&path)?;
            log_cmd::run(out, &mut stack, log_cmd::Clock::Simulated, None, json)
        }
        #[cfg(windows)]
        None => {
            let mut port = windows::port::FilterPort::connect()?;
            let wait = || windows::sleep_ms(1000);
            let follow = follow.then_some(&wait as &dyn Fn());
            log_cmd::run(out, &mut port, log_cmd::Clock::System, follow, json)
        }
        #[cfg(not(windows))]
        None => {
            let _ = follow;
            Err(needs_windows("log"))
        }
    }
}

fn diagnose_cmd(
    out: &mut dyn Write,
    src: &str,
    dst: Option<&str>,
    process: Option<&str>,
    scenario: Option<PathBuf>,
    json: bool,
) -> CmdResult {
    match scenario {
        Some(path) => {
            let scenario = odx_sim::scenario::Scenario::load(&path)
                .map_err(|e| Failure::input(e.to_string()))?;
            let mut probe = diagnose_sim::SimProbe::new(&scenario).map_err(Failure::input)?;
            diagnose::run(out, &mut probe, src, dst, process, json)
        }
        #[cfg(windows)]
        None => diagnose::run(
            out,
            &mut windows::probe::WindowsProbe::new(),
            src,
            dst,
            process,
            json,
        ),
        #[cfg(not(windows))]
        None => Err(needs_windows("diagnose")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    let result = match cli.command {
        Command::Explain { code } => explain::run(&mut out, &code, cli.json),
        Command::Scenario {
            command: ScenarioCommand::Run { files, host_dir },
        } => scenario_cmd::run(&mut out, &files, host_dir.as_deref(), cli.json),
        Command::Copy(args) => copy_cmd::run(&mut out, &args, cli.json),
        Command::Demo => demo::run(&mut out, cli.json),
        Command::Stats { volume, scenario } => stats(&mut out, volume, scenario, cli.json),
        Command::Policy {
            mode,
            volume,
            scenario,
        } => policy(&mut out, mode.as_deref(), volume, scenario, cli.json),
        Command::Diagnose {
            src,
            dst,
            process,
            scenario,
        } => diagnose_cmd(
            &mut out,
            &src,
            dst.as_deref(),
            process.as_deref(),
            scenario,
            cli.json,
        ),
        Command::Rules { command } => rules(&mut out, command, cli.json),
        Command::Log { follow, scenario } => log(&mut out, follow, scenario, cli.json),
    };
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) if f.message.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(f) => {
            let line = f.message.replace('\n', " ");
            let _ = writeln!(io::stderr(), "odxctl: {line}");
            ExitCode::from(f.code)
        }
    }
}
