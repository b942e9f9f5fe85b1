//! The `weft` command.
//!
//! `weft run SCRIPT.lua [ARGS...]` runs a script on the embedded LuaJIT with `weft`
//! preloaded, so a user with only cargo can run weft programs. Batch commands
//! (similarity, top-k, diversity caches) arrive with the compute crate.

mod run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Parallel Lua and fast native compute for embeddings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Lua script on the embedded LuaJIT with `weft` preloaded.
    ///
    /// Example: weft run examples/hello.lua 4
    Run {
        /// The script to run (`-` reads it from standard input).
        script: String,
        /// Arguments for the script: `arg[1]`, `arg[2]`, … and `...`, as in `luajit`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { script, args } => run::run(&script, &args),
    }
}
