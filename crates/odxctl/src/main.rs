//! `odxctl`: explain offload status codes, run scenario files on the simulated stack, copy files
//! the way the Windows copy engine does, and a guided demo. See docs/odxctl.md.

mod codes;
mod copy_cmd;
mod demo;
mod explain;
mod scenario_cmd;
mod text;

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
