//! The progress bar of long compute calls (`progress = true`): on stderr when it is a
//! terminal, nothing otherwise (indicatif hides itself).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar with rate and time left.
pub(crate) struct Bar(ProgressBar);

impl Bar {
    /// A bar labelled `what`, length set by the first [`Bar::set`].
    pub(crate) fn new(what: &'static str) -> Bar {
        let bar = ProgressBar::new(0);
        let style =
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what);
        Bar(bar)
    }

    /// `done` of `total` finished.
    pub(crate) fn set(&mut self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
