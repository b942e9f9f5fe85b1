//! Progress, notes and summaries on stderr.
//!
//! `--progress bar` (the default) draws an indicatif bar with rate and ETA, only when stderr
//! is a terminal (indicatif draws nothing otherwise); `--progress json` prints one JSON
//! object per line and per update, e.g.
//! `{"phase":"orderings","done":64,"total":2000,"elapsed_s":1.2,"rate":53.3,"eta_s":36.3}`
//! (`rate` in items per second over this run, `eta_s` null until known); notes become
//! `{"note":"…"}` so every line but a failure's is JSON. `--quiet` prints nothing but errors.

use crate::opts::{Common, ProgressMode};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

/// Where progress and notes go, as the command-line options chose.
#[derive(Clone, Copy, Debug)]
pub struct Reporter {
    mode: ProgressMode,
    quiet: bool,
}

impl Reporter {
    /// From `--quiet` and `--progress`.
    pub fn new(common: &Common) -> Reporter {
        Reporter {
            mode: common.progress,
            quiet: common.quiet,
        }
    }

    /// A reporter that prints nothing (for `weft bench`'s inner loads, tests).
    pub fn silent() -> Reporter {
        Reporter {
            mode: ProgressMode::None,
            quiet: true,
        }
    }

    fn json(&self) -> bool {
        !self.quiet && self.mode == ProgressMode::Json
    }

    /// A one-line note (`weft: note: …`), e.g. a converted dtype.
    pub fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.json() {
            line(&json!({ "note": text }).to_string());
        } else {
            line(&format!("weft: note: {text}"));
        }
    }

    /// The closing summary of a successful command (plain text only; JSON users read the
    /// last progress line).
    pub fn summary(&self, text: &str) {
        if !self.quiet && self.mode != ProgressMode::Json {
            line(&format!("weft: {text}"));
        }
    }

    /// A phase of `total` units, `done` of them already finished (a resumed cache).
    pub fn phase(&self, name: &'static str, done: u64, total: u64) -> Phase {
        let bar = (!self.quiet && self.mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = if total > 1 {
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            } else {
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            };
            bar.set_style(
                style
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(name);
            bar.set_position(done);
            bar.reset_eta();
            if total <= 1 {
                bar.enable_steady_tick(Duration::from_millis(120));
            }
            bar
        });
        let phase = Phase {
            name,
            json: self.json(),
            bar,
            t0: Instant::now(),
            done0: done,
            done,
            total,
        };
        phase.emit();
        phase
    }
}

/// One phase's progress: a bar, JSON lines, or nothing.
pub struct Phase {
    name: &'static str,
    json: bool,
    bar: Option<ProgressBar>,
    t0: Instant,
    done0: u64,
    done: u64,
    total: u64,
}

impl Phase {
    /// `done` of `total` units are finished.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        self.emit();
    }

    /// Marks the phase finished and clears the bar.
    pub fn finish(mut self) {
        if self.done != self.total {
            self.set(self.total);
        }
    }

    /// Seconds since the phase began.
    pub fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn emit(&self) {
        if !self.json {
            return;
        }
        let elapsed = self.elapsed();
        let new = self.done.saturating_sub(self.done0) as f64;
        let rate = (elapsed > 0.0 && new > 0.0).then(|| new / elapsed);
        let eta = rate.map(|r| self.total.saturating_sub(self.done) as f64 / r);
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        line(
            &json!({
                "phase": self.name,
                "done": self.done,
                "total": self.total,
                "elapsed_s": round(elapsed),
                "rate": rate.map(round),
                "eta_s": eta.map(round),
            })
            .to_string(),
        );
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Writes one line to stderr, ignoring failures (a closed stderr must not fail the job).
fn line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}
