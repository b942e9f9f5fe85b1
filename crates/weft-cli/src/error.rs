//! How a command fails: one line on stderr and an exit code.
//!
//! Exit codes: 0 only when the output is complete; 2 for usage errors (clap's own);
//! 130 / 143 when SIGINT / SIGTERM stopped a `diversity-cache` run (work so far saved);
//! 1 for everything else, always with exactly one line naming the input and the problem.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;
use weft_compute::ComputeError;
use weft_npy::NpyError;

/// A failed command: the line to print (without the `weft: ` prefix) and the exit code.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    /// A failure with another exit code (e.g. 130 after SIGINT).
    pub fn with_code(message: impl Into<String>, code: u8) -> Failure {
        Failure {
            message: message.into(),
            code,
        }
    }

    /// An engine error about the embeddings read from `path`: the engine's message with its
    /// `embeddings: ` prefix replaced by the file, e.g. `emb.npy: row 17 is all zeros`.
    pub fn input(path: &Path, e: ComputeError) -> Failure {
        let text = e.to_string();
        let text = text.strip_prefix("embeddings: ").unwrap_or(&text);
        Failure::new(format!("{}: {text}", path.display()))
    }

    /// A failure of a call routed by `--device`: input errors name the input file.
    pub fn routed(path: &Path, f: weft_lua::device::Failure) -> Failure {
        match f {
            weft_lua::device::Failure::Input(e) => Failure::input(path, e),
            weft_lua::device::Failure::Device(msg) => Failure::new(msg),
        }
    }

    /// An engine error that already names its file (cache files) or needs none.
    pub fn compute(e: ComputeError) -> Failure {
        Failure::new(e.to_string())
    }

    /// A `.npy` error; its message starts with the file.
    pub fn npy(e: NpyError) -> Failure {
        Failure::new(e.to_string())
    }

    /// The exit code.
    pub fn code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }

    /// The single line printed on stderr: `weft: ` and the message, newlines flattened.
    pub fn line(&self) -> String {
        format!("weft: {}", self.message.replace(['\n', '\r'], " "))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What every command returns.
pub type Outcome = Result<(), Failure>;
