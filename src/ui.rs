//! Everything distrod says to a person goes through [`Ui`]: status lines and warnings on
//! stderr, progress bars (drawn only on a terminal and never with `--quiet`), so output can be
//! silenced or kept machine-readable (results go to stdout, chatter to stderr).

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use crate::image::source::Progress;

/// How distrod talks to the person running it (see the module's documentation); one per
/// command, made from `--quiet`.
#[derive(Debug, Clone)]
pub struct Ui {
    quiet: bool,
    bars: bool,
}

impl Ui {
    /// `quiet` hides status lines and progress bars (warnings stay); bars are drawn only
    /// when stderr is a terminal.
    pub fn new(quiet: bool) -> Ui {
        Ui {
            quiet,
            bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A line about what is happening; hidden by `--quiet`.
    pub fn status(&self, msg: impl Display) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// Something the user should know even with `--quiet`.
    pub fn warn(&self, msg: impl Display) {
        eprintln!("warning: {msg}");
    }

    /// How a download shows: a byte bar while it runs (a spinner until its size is known;
    /// drawn only on a terminal), its lines printed around the bar.
    pub fn download(&self) -> Arc<dyn Progress> {
        Arc::new(Download {
            ui: self.clone(),
            bar: Mutex::new(ProgressBar::hidden()),
        })
    }

    /// A byte-count progress bar titled `prefix` (a spinner until [`set_total`] gives it a
    /// length); hidden unless stderr is a terminal.
    fn bytes_bar(&self, total: Option<u64>, prefix: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template("{prefix} {spinner} {bytes} {bytes_per_sec}")
                    .expect("valid template"),
            )
            // A bar dropped unfinished (a 404 before falling back) must not stay on screen.
            .with_finish(ProgressFinish::AndClear);
        bar.set_prefix(prefix.to_string());
        if let Some(t) = total {
            set_total(&bar, t);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// A download as [`Ui::download`] shows it: the bar of the download under way.
struct Download {
    ui: Ui,
    bar: Mutex<ProgressBar>,
}

impl Download {
    fn bar(&self) -> ProgressBar {
        self.bar.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Progress for Download {
    fn start(&self, total: Option<u64>) {
        let bar = self.ui.bytes_bar(total, "Downloading");
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = bar;
    }

    fn total(&self, bytes: u64) {
        set_total(&self.bar(), bytes);
    }

    fn position(&self, bytes: u64) {
        self.bar().set_position(bytes);
    }

    fn finish(&self) {
        self.bar().finish_and_clear();
    }

    fn resumed(&self, bytes: u64) {
        self.status(&format!("Resuming the download at {}.", human_bytes(bytes)));
    }

    fn status(&self, line: &str) {
        self.bar().suspend(|| self.ui.status(line));
    }

    fn warn(&self, line: &str) {
        self.ui.warn(line);
    }
}

/// Gives a byte bar its length once it is known (from the catalog or Content-Length).
fn set_total(bar: &ProgressBar, total: u64) {
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_length(total);
}

/// `123456789` → `117.7 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// One line on a terminal's stderr saying what a wait is for, shown only once the wait has
/// lasted [`WaitLine::DELAY`] (a short wait shows nothing), redrawn when the text changes
/// and erased when the wait ends. Nothing at all when stderr is not a terminal, so the
/// output of `wsl -- CMD` stays exactly the command's. A thread keeps the time, so the
/// waiting code only says what it waits for.
pub struct WaitLine {
    tx: Option<std::sync::mpsc::Sender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Made by [`WaitLine::later`] and not yet given a text: no thread yet.
    pending: bool,
}

impl WaitLine {
    /// How long a wait lasts before its line is shown.
    pub const DELAY: Duration = Duration::from_secs(1);

    /// A line for a wait that starts now, saying `text`.
    pub fn start(text: impl Display) -> WaitLine {
        let mut line = WaitLine::later();
        line.set(text);
        line
    }

    /// A line whose thread (and clock) starts only with the first [`WaitLine::set`]: for a
    /// wait whose first words come after a fork, since no thread may run at a fork.
    pub fn later() -> WaitLine {
        WaitLine {
            tx: None,
            thread: None,
            pending: true,
        }
    }

    fn spawn(&mut self, first: String) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let thread = std::thread::spawn(move || {
            use std::io::Write;
            use std::sync::mpsc::RecvTimeoutError;
            let draw = |t: &str| {
                let mut e = std::io::stderr().lock();
                let _ = write!(e, "\r\x1b[2Kdistrod: {t}...");
                let _ = e.flush();
            };
            let shown_at = std::time::Instant::now() + WaitLine::DELAY;
            let mut text = first;
            let mut shown = false;
            loop {
                let next = if shown {
                    rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
                } else {
                    rx.recv_timeout(shown_at.saturating_duration_since(std::time::Instant::now()))
                };
                match next {
                    Ok(t) => {
                        text = t;
                        if shown {
                            draw(&text);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        shown = true;
                        draw(&text);
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            if shown {
                let mut e = std::io::stderr().lock();
                let _ = write!(e, "\r\x1b[2K");
                let _ = e.flush();
            }
        });
        self.tx = Some(tx);
        self.thread = Some(thread);
    }

    /// What the wait is for now.
    pub fn set(&mut self, text: impl Display) {
        if self.pending {
            self.pending = false;
            self.spawn(text.to_string());
        } else if let Some(tx) = &self.tx {
            let _ = tx.send(text.to_string());
        }
    }

    /// Ends the wait: the line (if it was shown) is erased before this returns.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WaitLine {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1023), "1023 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(94 * 1024 * 1024), "94.0 MiB");
    }
}
